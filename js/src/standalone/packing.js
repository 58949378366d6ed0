// Arrays packed by saewidgets/export/packing.py: JSON holds {"$a": [offset, length, code]}
// references into one little-endian buffer (a DataView, as ipywidgets delivers bytes traits).

function float16(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const READERS = {
  f2: [2, (view, at) => float16(view.getUint16(at, true))],
  f4: [4, (view, at) => view.getFloat32(at, true)],
  u2: [2, (view, at) => view.getUint16(at, true)],
  u4: [4, (view, at) => view.getUint32(at, true)],
  i4: [4, (view, at) => view.getInt32(at, true)],
};

/** A DataView over bytes that arrive as DataView, ArrayBuffer or typed array. */
export function asDataView(bytes) {
  if (!bytes) return new DataView(new ArrayBuffer(0));
  if (bytes instanceof DataView) return bytes;
  if (bytes instanceof ArrayBuffer) return new DataView(bytes);
  if (ArrayBuffer.isView(bytes)) return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new Error("packed data must be binary");
}

function isRef(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Array.isArray(value.$a) && Object.keys(value).length === 1;
}

/** `value` with every array reference replaced by a plain array of numbers. */
export function unpack(value, view) {
  if (isRef(value)) {
    const [offset, length, code] = value.$a;
    const reader = READERS[code];
    if (!reader) throw new Error(`unknown packed array type ${code}`);
    const [size, read] = reader;
    if (offset + length * size > view.byteLength) throw new Error("packed array reaches past the buffer");
    const out = new Array(length);
    for (let i = 0; i < length; i++) out[i] = read(view, offset + i * size);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => unpack(v, view));
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [key, v] of Object.entries(value)) out[key] = unpack(v, view);
    return out;
  }
  return value;
}
