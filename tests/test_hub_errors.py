"""Hub failures of sw.load_model (and load_sae(release=...)) are the package's own ValueErrors.

Each case runs in a fresh interpreter, as a user's session would, because huggingface_hub
reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported. "Unreachable" is real: the
endpoint is a closed port on this machine (and, where the test machine has no network, the
real hub). "Not found" and "gated" need a hub that answers: a loopback HTTP server answers
the two requests involved the way the hub does (status code, X-Error-Code header).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tiny_models import tiny_hf_model

ROOT = Path(__file__).resolve().parents[1]
CACHED = "saewidgets-tests/cached-gpt2"

# Loads each spec in argv[1] (JSON) and prints one JSON line per spec: the error's type and
# text, the seconds it took, or "loaded" with the logits' shape.
WORKER = r"""
import json, sys, time
import saewidgets as sw
for spec in json.loads(sys.argv[1]):
    start = time.perf_counter()
    try:
        if spec.startswith("sae:"):
            release, sae_id = spec[4:].split("|")
            sw.load_sae(release=release, sae_id=sae_id)
            result = {"loaded": True}
        else:
            dispatch = spec.startswith("dispatch:")
            model = sw.load_model(spec.removeprefix("dispatch:"), dispatch=dispatch)
            assert next(model._module.parameters()).is_meta != dispatch
            with model.trace("The quick brown fox"):
                logits = model.lm_head.output.save()
            result = {"loaded": True, "shape": list(logits.shape)}
    except Exception as error:
        result = {"type": type(error).__name__, "message": str(error)}
    result["seconds"] = time.perf_counter() - start
    print("RESULT " + json.dumps({"spec": spec, **result}), flush=True)
"""


def run_worker(specs: list[str], **env: str) -> dict[str, dict]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    environment.update(env, PYTHONPATH=os.pathsep.join([str(ROOT), environment.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(specs)],
        env=environment, capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            results[result["spec"]] = result
    assert len(results) == len(specs), done.stdout + done.stderr
    return results


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    """An HF_HOME whose hub cache holds CACHED (a tiny GPT-2), laid out as huggingface_hub lays it."""
    home = tmp_path_factory.mktemp("hf_home")
    repo = home / "hub" / f"models--{CACHED.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    model, tokenizer = tiny_hf_model("gpt2")
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return home


class FakeHub(BaseHTTPRequestHandler):
    """Answers like the hub for three repositories: one that does not exist, one that is gated,
    one without a pipeline tag or files."""

    def _answer(self, body: bool) -> None:
        if "saewidgets-tests/missing" in self.path:
            status, headers, payload = 404, {"X-Error-Code": "RepoNotFound"}, b'{"error":"Repository not found"}'
        elif self.path.startswith("/api/models/saewidgets-tests/gated"):
            info = {"id": "saewidgets-tests/gated", "pipeline_tag": "text-generation", "library_name": "transformers", "gated": "manual",
                    "private": False, "sha": "0" * 40, "tags": [], "siblings": []}
            status, headers, payload = 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
        elif self.path.startswith("/api/models/saewidgets-tests/untagged/tree/"):  # no files at all
            status, headers, payload = 200, {"Content-Type": "application/json"}, b"[]"
        elif self.path.startswith("/api/models/saewidgets-tests/untagged"):  # no pipeline_tag
            info = {"id": "saewidgets-tests/untagged", "library_name": "transformers", "sha": "0" * 40}
            status, headers, payload = 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
        elif "saewidgets-tests/untagged" in self.path:
            status, headers, payload = 404, {"X-Error-Code": "EntryNotFound"}, b'{"error":"Entry not found"}'
        elif "saewidgets-tests/gated" in self.path:
            status, payload = 401, b'{"error":"Access to model saewidgets-tests/gated is restricted."}'
            headers = {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model saewidgets-tests/gated is restricted."}
        else:
            status, headers, payload = 500, {}, b"unexpected request"
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def assert_ours(result: dict, spec: str) -> str:
    assert result["type"] == "ValueError", result
    message = result["message"]
    assert message.startswith(f"could not load model {spec!r}: it is not a local directory"), message
    assert "Fix: " in message and "Instantiating a pipeline" not in message, message
    return message


@pytest.mark.slow
def test_unreachable_hub_says_so_fast_and_points_at_the_cache(hf_home):
    again = "dispatch:saewidgets-tests/typo-gpt2"  # the same miss once the libraries are imported
    results = run_worker(["saewidgets-tests/typo-gpt2", CACHED, again], HF_HOME=str(hf_home),
                         HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    missing = assert_ours(results["saewidgets-tests/typo-gpt2"], "saewidgets-tests/typo-gpt2")
    assert "could not be reached" in missing and "is not in your cache" in missing
    assert "HF_HUB_OFFLINE=1" in missing and "hf download saewidgets-tests/typo-gpt2" in missing
    cached = assert_ours(results[CACHED], CACHED)
    assert "a copy is in your cache" in cached and "set HF_HUB_OFFLINE=1" in cached
    assert "could not be reached" in results[again]["message"]
    # one refused connection, no retries (hub retries back off for seconds); timed on the second
    # miss, after the first has paid for importing transformers, so a busy machine does not count
    assert results[again]["seconds"] < 10, results


@pytest.mark.slow
def test_offline_cache_miss_and_hit(hf_home):
    specs = ["saewidgets-tests/typo-gpt2", CACHED, f"dispatch:{CACHED}"]
    results = run_worker(specs, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1")
    missing = assert_ours(results["saewidgets-tests/typo-gpt2"], "saewidgets-tests/typo-gpt2")
    assert "HF_HUB_OFFLINE=1 is set" in missing and "not in your cache" in missing and "unset HF_HUB_OFFLINE" in missing
    # The fix that the first message gives works, lazily (weights on first trace) and dispatched.
    vocab = json.loads((next((hf_home / "hub").glob("models--*/snapshots/*")) / "config.json").read_text())["vocab_size"]
    for spec in specs[1:]:
        assert results[spec].get("loaded") and results[spec]["shape"][-1] == vocab, results


@pytest.mark.slow
def test_not_found_gated_and_untagged(hf_home, fake_hub):
    specs = ["saewidgets-tests/missing", "saewidgets-tests/gated", "saewidgets-tests/untagged"]
    results = run_worker(specs, HF_HOME=str(hf_home), HF_ENDPOINT=fake_hub)
    missing = assert_ours(results["saewidgets-tests/missing"], "saewidgets-tests/missing")
    assert "the hub has no repository 'saewidgets-tests/missing'" in missing and "check the id's spelling" in missing
    gated = assert_ours(results["saewidgets-tests/gated"], "saewidgets-tests/gated")
    assert "is gated" in gated and "https://huggingface.co/saewidgets-tests/gated" in gated
    assert "hf auth login" in gated and "huggingface-cli" not in gated
    # No pipeline tag: taken for a causal LM, so the load goes on to the files; it has none.
    untagged = results["saewidgets-tests/untagged"]
    assert untagged["type"] == "ValueError", untagged
    assert untagged["message"].startswith("could not load model 'saewidgets-tests/untagged': it is not a local directory")
    assert "pipeline_tag" not in untagged["message"] and "tokenizer" in untagged["message"], untagged


@pytest.mark.slow
def test_default_endpoint_gives_our_error(tmp_path):
    """The real hub, as a user without HF_ENDPOINT meets it: unreachable here, not-found elsewhere."""
    spec = "saewidgets-tests/no-such-model-3f9c2"
    message = assert_ours(run_worker([spec], HF_HOME=str(tmp_path))[spec], spec)
    assert "could not be reached" in message or "the hub has no repository" in message, message


@pytest.mark.slow
def test_saelens_release_unreachable(tmp_path):
    pytest.importorskip("sae_lens")
    spec = "sae:gpt2-small-res-jb|blocks.8.hook_resid_pre"
    result = run_worker([spec], HF_HOME=str(tmp_path), HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")[spec]
    assert result["type"] == "ValueError", result
    message = result["message"]
    assert message.startswith("could not load SAE release='gpt2-small-res-jb', sae_id='blocks.8.hook_resid_pre'"), message
    assert "jbloom/GPT2-Small-SAEs-Reformatted" in message and "could not be reached" in message
    assert "--include 'blocks.8.hook_resid_pre/*'" in message and "load_sae('DIR/blocks.8.hook_resid_pre')" in message


def test_unrelated_errors_pass_through():
    """Only the hub's failures are rewritten: a plain bug keeps its own type and message."""
    from saewidgets.core.hub_errors import hub_failure

    assert hub_failure(KeyError("d_model")) is None
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError:  # as transformers' get_task does: a new error, the old one as its context
            raise RuntimeError("Instantiating a pipeline without a task set raised an error")  # noqa: B904
    except RuntimeError as error:
        failure = hub_failure(error)
    assert failure is not None and failure.kind == "unreachable" and "Name or service not known" in failure.detail
