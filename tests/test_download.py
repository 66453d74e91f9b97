"""The downloader and models by name/URL, against a real HTTP server on 127.0.0.1 (tests/http_util.py)
serving the committed fixture models: cache and manifest, ETag, Range resume, restarts, errors,
changed files, offline mode, the mirror, two processes, checks of what arrives."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from http_util import FileServer

from elmo_tasks import download
from elmo_tasks.errors import UserError
from elmo_tasks.model_folder import FIXTURE_MODEL_DIR, ModelFolder, resolve_model
from elmo_tasks.model_sources import cached_model
from elmo_tasks.models.registry import MODELS, find

ROOT = Path(__file__).parents[1]
OPTIONS = (FIXTURE_MODEL_DIR / "options.json").read_bytes()
WEIGHTS = (FIXTURE_MODEL_DIR / "weights.hdf5").read_bytes()
HUB_ARCHIVE = ROOT / "tests" / "fixtures" / "tf" / "hub_module.tar.gz"


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ELMO_TASKS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    with FileServer() as files:
        monkeypatch.setenv("ELMO_TASKS_MODEL_MIRROR", files.url)
        for name in ("small", "original"):  # the fixture model's files at the registry's paths
            files.add(path_of(MODELS[name].options), OPTIONS)
            files.add(path_of(MODELS[name].weights), WEIGHTS)
        files.add("/google/elmo/3", HUB_ARCHIVE)
        yield files


def test_download_is_cached_with_its_manifest(server):
    url = server.add("/files/weights.hdf5", WEIGHTS)
    path = download.fetch(url)
    assert path.read_bytes() == WEIGHTS
    manifest = json.loads((path.parent / download.MANIFEST_NAME).read_text())
    assert manifest["url"] == url and manifest["size"] == len(WEIGHTS)
    assert manifest["sha256"] == hashlib.sha256(WEIGHTS).hexdigest() and manifest["etag"].startswith('"')
    assert manifest["date"].endswith("Z")
    assert download.fetch(url) == path and len(server.requests("/files/weights.hdf5")) == 1  # no second request
    assert not list(path.parent.glob("*.partial*"))


def test_dropped_connection_resumes_with_range(server):
    url = server.add("/files/weights.hdf5", WEIGHTS)
    half = len(WEIGHTS) // 2
    server.drop["/files/weights.hdf5"] = half
    path = download.fetch(url)
    first, second = server.requests("/files/weights.hdf5")
    assert first["status"] == 200 and first["sent"] == half
    assert second["range"] == f"bytes={half}-" and second["if_range"] and second["status"] == 206
    assert second["sent"] == len(WEIGHTS) - half  # resumed, not restarted
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(WEIGHTS).hexdigest()
    assert not list(path.parent.glob("*.partial*"))


def test_server_without_ranges_restarts(server):
    server.ranges = False
    url = server.add("/files/weights.hdf5", WEIGHTS)
    server.drop["/files/weights.hdf5"] = len(WEIGHTS) // 3
    path = download.fetch(url)
    first, second = server.requests("/files/weights.hdf5")
    assert second["range"] and second["status"] == 200 and second["sent"] == len(WEIGHTS)
    assert path.read_bytes() == WEIGHTS


def test_killed_process_resumes_from_its_partial_file(server, tmp_path):
    data = os.urandom(4 << 20)
    url = server.add("/big.bin", data)
    server.delay_s = 0.01  # 64 KiB per 10 ms: the transfer takes about 0.7 s
    child = subprocess.Popen([sys.executable, "-c", f"from elmo_tasks import download; download.fetch({url!r})"],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    partial = download.entry_dir(url) / ("big.bin" + download.PARTIAL_SUFFIX)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not partial.is_file() or partial.stat().st_size < 1 << 20):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    kept = partial.stat().st_size
    assert 0 < kept < len(data)
    server.delay_s = 0.0
    path = download.fetch(url)
    last = server.requests("/big.bin")[-1]
    assert last["range"] == f"bytes={kept}-" and last["status"] == 206 and last["sent"] == len(data) - kept
    assert path.read_bytes() == data and not partial.exists()


def test_404_and_403_are_one_line_errors_naming_url_and_cache(server):
    for status in (404, 403):
        url = f"{server.url}/missing-{status}.hdf5"
        server.status[f"/missing-{status}.hdf5"] = status
        with pytest.raises(UserError) as error:
            download.fetch(url)
        message = str(error.value)
        assert "\n" not in message and f"HTTP {status}" in message and url in message
        assert str(download.entry_dir(url)) in message and "by hand" in message
        assert len(server.requests(f"/missing-{status}.hdf5")) == 1  # not retried
        assert download.cached_path(url) is None


def test_server_errors_are_retried_a_bounded_number_of_times(server):
    url = server.add("/flaky.bin", b"x" * 1000)
    server.status["/flaky.bin"] = 503
    with pytest.raises(UserError, match=f"HTTP 503.*{download.ATTEMPTS} attempts"):
        download.fetch(url)
    assert len(server.requests("/flaky.bin")) == download.ATTEMPTS
    del server.status["/flaky.bin"]
    assert download.fetch(url).read_bytes() == b"x" * 1000


def test_no_network_is_a_one_line_error(server, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_MODEL_MIRROR", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(UserError, match="cannot download http://127.0.0.1:9/.*check the network") as error:
        resolve_model("small")
    assert "\n" not in str(error.value)


def test_a_changed_file_under_the_same_url_is_refused(server):
    url = server.add("/files/options.json", OPTIONS)
    path = download.fetch(url)
    assert download.fetch(url, revalidate=True) == path  # unchanged: 304
    assert server.requests("/files/options.json")[-1]["status"] == 304
    server.files["/files/options.json"] = OPTIONS.replace(b"}", b" }", 1)
    with pytest.raises(UserError, match="changed on the server since its first download.*refused") as error:
        download.fetch(url, revalidate=True)
    assert "is kept" in str(error.value) and path.read_bytes() == OPTIONS
    server.files["/files/options.json"] = OPTIONS
    path.write_bytes(OPTIONS[:10])  # a damaged cached copy is downloaded again, not revalidated
    assert download.fetch(url).read_bytes() == OPTIONS and server.requests("/files/options.json")[-1]["status"] == 200
    server.files["/files/options.json"] = OPTIONS.replace(b"}", b" }", 1)
    path.unlink()  # gone from the cache: the manifest still holds the first download's digest
    with pytest.raises(UserError, match="changed on the server"):
        download.fetch(url)


def test_offline_mode_never_touches_the_network(server, monkeypatch):
    folder = resolve_model("small").path
    count = len(server.log)
    for variable in ("ELMO_TASKS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(variable, "1")
        assert resolve_model("small").path == folder  # cached: works
        with pytest.raises(UserError, match=f"not in the cache .*{variable}=1 forbids the network"):
            resolve_model("original")
        monkeypatch.delenv(variable)
    assert len(server.log) == count


def test_mirror_and_names_give_the_fixture_model(server):
    folder = resolve_model("small")
    assert folder.digest() == ModelFolder(FIXTURE_MODEL_DIR).digest()
    paths = [entry["path"] for entry in server.log]
    assert paths == [path_of(MODELS["small"].options), path_of(MODELS["small"].weights)]
    assert paths[0].startswith("/allennlp/models/elmo/2x1024_128_2048cnn_1xhighway/")
    other_host = MODELS["small"].options.replace("https://s3-us-west-2.amazonaws.com/allennlp/",
                                                 "https://allennlp.s3.amazonaws.com/")
    assert find(other_host) is MODELS["small"]
    assert resolve_model(other_host).path == folder.path and len(server.log) == 2  # same files, no download
    assert cached_model("small") == folder.path


def test_two_processes_download_once(server):
    url = server.add("/shared.bin", os.urandom(2 << 20))
    server.delay_s = 0.01
    code = f"from elmo_tasks import download; print(download.fetch({url!r}))"
    children = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    outputs = [child.communicate(timeout=60)[0].strip() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert outputs[0] == outputs[1] and Path(outputs[0]).read_bytes() == server.files["/shared.bin"]
    assert len(server.requests("/shared.bin")) == 1


def test_truncated_or_hostile_downloads_are_errors_and_not_kept(server):
    url = server.add("/bad/elmo_x_options.json", OPTIONS)
    server.add("/bad/elmo_x_weights.hdf5", WEIGHTS[: len(WEIGHTS) // 2])  # complete by HTTP, a truncated HDF5
    with pytest.raises(UserError, match="not a usable weights file.*not kept") as error:
        resolve_model(url)
    assert "\n" not in str(error.value)
    assert download.cached_path(f"{server.url}/bad/elmo_x_weights.hdf5") is None
    assert not list(download.entry_dir(f"{server.url}/bad/elmo_x_weights.hdf5").glob("*.hdf5*"))
    server.add("/bad/module.tar.gz", b"\x1f\x8b" + os.urandom(5000))
    with pytest.raises(UserError, match="not a usable model, and was not kept"):
        resolve_model(f"{server.url}/bad/module.tar.gz")
    assert not download.entry_dir(f"{server.url}/bad/module.tar.gz").exists()


def test_not_enough_disk_space_is_refused_before_writing(server):
    url = server.add("/huge.bin", b"tiny")
    server.announce["/huge.bin"] = 1 << 60  # the server claims an exabyte
    with pytest.raises(UserError, match="not enough disk space for .*huge.bin.*ELMO_TASKS_CACHE"):
        download.fetch(url)


def test_tfhub_handle_and_kaggle_form_through_the_converter(server):
    from elmo_tasks.compat import tfhub as hub

    sentences = ["I love to watch TV", "I am wearing a wrist watch"]
    remote = hub.Module("https://tfhub.dev/google/elmo/3")(sentences, as_dict=True)
    assert server.requests("/google/elmo/3")[0]["query"] == "tf-hub-format=compressed"
    local = hub.Module(str(HUB_ARCHIVE))(sentences, as_dict=True)
    for key in ("elmo", "default", "word_emb"):
        np.testing.assert_array_equal(remote[key], local[key])
    kaggle = resolve_model("https://www.kaggle.com/models/google/elmo/TensorFlow1/elmo/3")
    assert kaggle.path == resolve_model("tfhub-elmo-3").path and len(server.requests("/google/elmo/3")) == 1


def test_allennlp_compat_takes_urls_and_a_flair_name(server):
    import torch

    from elmo_tasks.compat.allennlp import Elmo, ElmoEmbedder, batch_to_ids

    ids = batch_to_ids([["First", "sentence", "."], ["Another", "."]])
    local = Elmo(str(FIXTURE_MODEL_DIR / "options.json"), str(FIXTURE_MODEL_DIR / "weights.hdf5"), 1, dropout=0)(ids)
    remote = Elmo(MODELS["original"].options, MODELS["original"].weights, 1, dropout=0)(ids)
    torch.testing.assert_close(remote["elmo_representations"][0], local["elmo_representations"][0], atol=0, rtol=0)
    vectors = ElmoEmbedder().embed_sentence(["Another", "."])  # AllenNLP's default URLs: the original model
    np.testing.assert_array_equal(ElmoEmbedder("small").embed_sentence(["Another", "."]), vectors)
    with pytest.raises(UserError, match="names a model"):
        ElmoEmbedder("small", "weights.hdf5")


def test_models_command_lists_and_downloads(server, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "elmo_tasks.cli"]
    listed = subprocess.run([*cli, "models"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0
    assert next(line for line in listed.stdout.splitlines() if line.startswith("small ")).split()[-2:] == ["no", "-"]
    fetched = subprocess.run([*cli, "models", "download", "small"], env=env, capture_output=True, text=True, timeout=60)
    assert fetched.returncode == 0, fetched.stderr
    assert Path(fetched.stdout.strip()) == cached_model("small")
    listed = subprocess.run([*cli, "models"], env=env, capture_output=True, text=True, timeout=60).stdout
    assert next(line for line in listed.splitlines() if line.startswith("small ")).split()[-3] == "yes"
    embedded = subprocess.run([*cli, "embed", "--model", "small", "a watch"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert embedded.returncode == 0, embedded.stderr
    bad = subprocess.run([*cli, "embed", "--model", "no-such-model", "a"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "elmo-tasks models" in bad.stderr


def test_config_model_takes_a_name_and_a_url(server, tmp_path, monkeypatch):
    from tasks_util import TASK_FIXTURES

    from elmo_tasks.experiment import load_config
    from elmo_tasks.schema import ConfigError

    for model in ("small", MODELS["original"].options.replace("https://s3-us-west-2.amazonaws.com/allennlp/",
                                                              "https://allennlp.s3.amazonaws.com/")):
        path = tmp_path / "config.yaml"
        path.write_text(f"extends: {TASK_FIXTURES / 'wnut16_elmo.yaml'}\nfeatures:\n  elmo: {{model: '{model}'}}\n")
        config = load_config(path)
        assert config.features.elmo.model == model  # not taken for a path beside the config
        assert config.features.elmo.identity() == {"model_digest": ModelFolder(FIXTURE_MODEL_DIR).digest()}
    monkeypatch.setenv("ELMO_TASKS_OFFLINE", "1")
    path.write_text(f"extends: {TASK_FIXTURES / 'wnut16_elmo.yaml'}\nfeatures:\n  elmo: {{model: medium}}\n")
    with pytest.raises(ConfigError, match="features.elmo.model: .*not in the cache"):
        load_config(path)


def test_embedder_and_init_from_take_names(server):
    from elmo_tasks.bilm.options import BiLMOptions
    from elmo_tasks.embedder import Embedder
    from elmo_tasks.pretrain.init_from import load_initial

    remote = Embedder.from_dir("small").embed_sentences([["a", "watch"]])
    local = Embedder.from_dir(FIXTURE_MODEL_DIR).embed_sentences([["a", "watch"]])
    np.testing.assert_array_equal(next(iter(remote)), next(iter(local)))
    initial = load_initial("small", BiLMOptions.load(FIXTURE_MODEL_DIR / "options.json"), "config.yaml")
    assert initial.source == cached_model("small") and initial.softmax is None  # --init-from small


def test_nlpl_id_through_the_converter(server, tmp_path):
    import io
    import zipfile

    from elmo_tasks.embedder import Embedder

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.hdf5", WEIGHTS)
        archive.writestr("options.json", OPTIONS)
        archive.writestr("meta.json", '{"corpus": "the fixture"}')
    server.add("/repository/20/209.zip", buffer.getvalue())
    folder = resolve_model("nlpl-209")
    assert (folder.path / "meta.json").is_file()
    converted = Embedder.from_dir(folder).embed_sentences([["a", "watch"]])
    np.testing.assert_array_equal(next(iter(converted)), next(iter(Embedder.from_dir(FIXTURE_MODEL_DIR).embed_sentences(
        [["a", "watch"]]))))
    assert resolve_model("nlpl:209").path == folder.path and len(server.requests("/repository/20/209.zip")) == 1
