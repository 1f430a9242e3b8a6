"""``seqagents push`` never loses work, and the card it writes is one a Hub visitor can trust.

The Hub is offline here: ``huggingface_hub.HfApi`` methods and ``get_token`` are replaced by
fakes, and every test runs in its own working folder (push writes ``runs/push/<name>``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import huggingface_hub
import pytest
from huggingface_hub import HfApi, ModelCard

from seqagents import DecisionTransformerAgent, load_agent
from seqagents.checkpoints.card import INSTALL, LICENSE, PAPERS, model_card
from seqagents.cli import main
from tests._hub import hub_connection_error, hub_http_error

REPO = "me/dt-pendulum"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny Pendulum DT whose training record names local paths, as a real run's does."""
    env = gym.make("Pendulum-v1")
    agent = DecisionTransformerAgent.create(
        env.observation_space,
        env.action_space,
        env_id="Pendulum-v1",
        hidden_size=16,
        n_layer=1,
        context_len=4,
        max_ep_len=256,
        target_return=-200.0,
        return_scale=100.0,
        device="cpu",
        seed=0,
    )
    training = {
        "dataset_id": str(tmp_path / "datasets" / "pendulum-random"),
        "steps": 10,
        "train_config": {"steps": 10, "batch_size": 4, "out_dir": str(tmp_path / "run")},
        "note": f"trained in {tmp_path / 'run'} on a laptop",
    }
    agent.config = agent.config.replace(training=training)
    agent.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake Hub: a logged-in user ``me``; records uploads; ``hub.fail`` makes uploads fail."""

    @dataclass
    class FakeHub:
        token: str | None = "hf_fake"  # what get_token() finds
        whoami_error: Exception | None = None  # raised by whoami (the login check)
        fail: Exception | None = None  # raised by upload_folder
        uploads: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    state = FakeHub()

    def whoami(self, token=None):
        if state.whoami_error is not None:
            raise state.whoami_error
        return {
            "name": "me",
            "orgs": [{"name": "club"}],
            "auth": {"accessToken": {"role": "write"}},
        }

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, revision=None, commit_message="", **kwargs):
        if state.fail is not None:
            raise state.fail
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        state.uploads.append((repo_id, files))
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: state.token)
    monkeypatch.setattr(HfApi, "whoami", whoami)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.chdir(tmp_path)
    return state


def _no_evaluation(monkeypatch):
    """Make any evaluation fail the test: the point is that none runs."""
    import seqagents.report

    def evaluate(*args, **kwargs):
        raise AssertionError("push evaluated although the Hub check should have stopped it")

    monkeypatch.setattr(seqagents.report, "evaluation_report", evaluate)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


QUICK = ["--episodes", "1", "--max-steps", "5", "--no-video", "--no-progress"]


# ---------------------------------------------------------------------------- never lose work
@pytest.mark.parametrize(
    ("token", "whoami_error", "message"),
    [
        (None, None, "not logged in to the Hugging Face Hub: log in with `hf auth login`"),
        ("hf_fake", ConnectionError("connection refused"), "cannot reach the Hugging Face Hub"),
        ("hf_fake", hub_connection_error(), "cannot reach the Hugging Face Hub"),  # its client's
        (
            "hf_fake",
            huggingface_hub.errors.OfflineModeIsEnabled("offline mode is enabled"),
            "cannot reach the Hugging Face Hub",
        ),
    ],
)
def test_the_hub_is_checked_before_anything_is_evaluated(
    checkpoint, hub, monkeypatch, capsys, token, whoami_error, message
):
    hub.token, hub.whoami_error = token, whoami_error
    _no_evaluation(monkeypatch)
    assert main(["push", str(checkpoint), REPO, *QUICK]) == 2
    err = _one_line_error(capsys)
    assert message in err and "--out DIR" in err, err
    assert not Path("runs").exists() and hub.uploads == []


def test_a_refused_token_or_a_foreign_namespace_is_one_line(checkpoint, hub, monkeypatch, capsys):
    _no_evaluation(monkeypatch)
    hub.whoami_error = hub_http_error("Invalid user token.", 401)
    assert main(["push", str(checkpoint), REPO, *QUICK]) == 2
    assert "refused the token" in _one_line_error(capsys)

    hub.whoami_error = None
    assert main(["push", str(checkpoint), "someone-else/dt", *QUICK]) == 2
    err = _one_line_error(capsys)
    assert "me cannot create repos in 'someone-else'" in err and "club/dt" in err, err


def test_a_failed_upload_keeps_the_folder_and_says_how_to_retry(checkpoint, hub, capsys):
    hub.fail = hub_http_error("500 Server Error\nlong details", 500)
    assert main(["push", str(checkpoint), REPO, *QUICK]) == 2
    err = _one_line_error(capsys)
    folder = Path("runs/push/dt-pendulum")
    assert f"kept in {folder}" in err, err
    assert f"retry with: seqagents push --from-folder {folder} {REPO}" in err, err
    assert {p.name for p in folder.iterdir()} == {"README.md", "config.json", "model.safetensors"}
    assert hub.uploads == []


def test_from_folder_uploads_the_prepared_folder_without_evaluating(
    checkpoint, hub, monkeypatch, capsys
):
    assert main(["push", str(checkpoint), REPO, *QUICK, "--out", "prepared"]) == 0
    assert "seqagents push --from-folder prepared me/dt-pendulum" in capsys.readouterr().out
    assert hub.uploads == []  # --out writes the folder only
    prepared = {p.name: p.read_bytes() for p in Path("prepared").iterdir()}

    _no_evaluation(monkeypatch)
    assert main(["push", "--from-folder", "prepared", REPO, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "repo": REPO,
        "uploaded": True,
        "folder": "prepared",
        "at": f"https://huggingface.co/{REPO}/commit/1",
    }
    assert hub.uploads == [(REPO, prepared)]  # the same bytes, nothing re-made


def test_push_without_out_writes_the_default_folder_then_uploads_it(checkpoint, hub, capsys):
    assert main(["push", str(checkpoint), "dt-pendulum", *QUICK, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # a bare name goes to the user's namespace
    folder = Path("runs/push/dt-pendulum")
    assert (summary["repo"], summary["uploaded"], summary["folder"]) == (REPO, True, str(folder))
    ((repo, files),) = hub.uploads
    assert repo == REPO and files == {p.name: p.read_bytes() for p in folder.iterdir()}
    assert f'from_pretrained("{REPO}")' in files["README.md"].decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-folder", "nowhere", REPO], "is not a folder prepared by seqagents push"),
        (["--from-folder", "prepared", "me/other"], "was prepared for another repo"),
        (["--from-folder", "prepared", REPO, "--out", "x"], "--from-folder takes only REPO"),
        (["{ckpt}"], "push needs MODEL and REPO"),
        (["{ckpt}", "me/dt/pendulum", "--out", "x"], "'me/dt/pendulum' is not a Hub repo id"),
    ],
)
def test_from_folder_refuses_what_it_cannot_upload(checkpoint, hub, capsys, args, message):
    assert main(["push", str(checkpoint), REPO, *QUICK, "--out", "prepared"]) == 0
    capsys.readouterr()
    args = [a.replace("{ckpt}", str(checkpoint)) for a in args]
    assert main(["push", *args]) == 2
    assert message in _one_line_error(capsys)
    assert hub.uploads == []


def test_library_push_to_hub_uploads_no_local_path(checkpoint, hub):
    agent = DecisionTransformerAgent.from_pretrained(checkpoint, device="cpu")
    agent.push_to_hub(REPO)
    ((repo, files),) = hub.uploads
    uploaded = files["config.json"].decode() + files["README.md"].decode()
    assert repo == REPO and str(checkpoint.parent) not in uploaded and "out_dir" not in uploaded
    assert json.loads(files["config.json"])["training"]["dataset_id"] == "pendulum-random"


# ---------------------------------------------------------------------------- the card
def _metrics(card: ModelCard) -> dict[str, object]:
    """The card's model-index metrics, ``{metric type: value}``, read back from its YAML."""
    return {r.metric_type: r.metric_value for r in card.data.eval_results}


def _assert_no_local_path(text: str, *local: Path) -> None:
    for word in ("/tmp", "/work", "/home", "out_dir", *map(str, local)):
        assert word not in text, word


def test_halfcheetah_card_reports_every_measured_metric_and_how_to_reproduce(hub, tmp_path, capsys):
    args = ["push", "dt/halfcheetah-medium", "me/dt-hc", *QUICK, "--out", "hc", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    text = Path("hc/README.md").read_text()
    card = ModelCard(text)
    from seqagents.scores import normalized_score

    assert _metrics(card) == {  # the Hub's metric type of the mean return is "mean_reward"
        "mean_reward": f"{summary['mean_return']:.2f} +/- {summary['std_return']:.2f}",
        "normalized_score": round(normalized_score(summary["mean_return"], "HalfCheetah-v5"), 2),
    }
    result = card.data.eval_results[0]
    assert (result.dataset_type, result.dataset_name) == ("local/halfcheetah/medium-v0",) * 2
    assert card.data.license == LICENSE and f"arxiv:{PAPERS['dt'].arxiv}" in card.data.tags
    assert INSTALL in text and "https://arxiv.org/abs/2106.01345" in text
    assert "seqagents evaluate me/dt-hc --episodes 1 --seed 0 --max-steps 5" in text
    assert "seqagents collect --zoo dt/halfcheetah-medium" in text
    assert "seqagents train dt/halfcheetah-medium --steps 20000 --warmup-steps 2000" in text
    assert "## Limitations" in text and "CPU run" in text  # the training record's note
    _assert_no_local_path(text + Path("hc/config.json").read_text(), tmp_path, ROOT)


def test_babyai_card_reports_the_success_rate(hub, tmp_path, capsys):
    args = ["push", "dt/babyai-gotolocal-s7n5", "me/dt-babyai", "--episodes", "2"]
    assert main([*args, "--max-steps", "8", "--no-video", "--out", "b", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    metrics = _metrics(ModelCard(Path("b/README.md").read_text()))
    assert "success_rate" in summary
    assert metrics["success_rate"] == round(100 * summary["success_rate"], 2)
    assert "normalized_score" not in metrics  # BabyAI has no reference returns


def test_card_embeds_the_replay_as_a_video_and_names_no_local_path(checkpoint):
    agent = DecisionTransformerAgent.from_pretrained(checkpoint, device="cpu")
    command = f"seqagents evaluate {checkpoint} --episodes 2"
    evaluation = {"mean_return": -1.0, "std_return": 0.5, "command": command}
    agent.config = agent.config.replace(evaluation=evaluation)
    spec = agent.config.to_checkpoint()
    text = str(model_card(spec, "DecisionTransformerAgent", REPO, "replay.mp4"))
    src = f"https://huggingface.co/{REPO}/resolve/main/replay.mp4"
    assert f'<video src="{src}" controls' in text and "![" not in text
    assert "seqagents evaluate ckpt --episodes 2" in text  # the folder reduced to its name
    assert '"dataset_id": "pendulum-random"' in text and "trained in run on a laptop" in text
    _assert_no_local_path(text, checkpoint.parent)
    saved = str(model_card(agent.spec, "DecisionTransformerAgent", str(checkpoint)))
    assert 'from_pretrained("ckpt")' in saved  # a save_pretrained card names no path either
    _assert_no_local_path(saved, checkpoint.parent)


@pytest.mark.parametrize("name", ["dt/breakout", "leap/breakout"])
def test_atari_cards_sample_link_their_paper_and_normalize(name):
    agent = load_agent(name)
    card = agent.generate_model_card()
    text = str(card)
    paper = PAPERS[agent.spec.algorithm]
    assert paper.url in text and f"arxiv:{paper.arxiv}" in card.data.tags
    assert "agent.predict(obs, deterministic=False, reward=reward)" in text
    assert "normalized_score" in _metrics(card)  # computed from the mean where not stored


def test_card_license_is_the_package_license():
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is not in Python 3.10)
    assert LICENSE == re.search(r'^license = \{ text = "(\w+)" \}', pyproject, re.M)[1].lower()
    assert INSTALL == 'pip install "seqagents[all]"' and re.search(r"^all = \[", pyproject, re.M)


def test_zoo_publish_pushes_every_bundled_checkpoint_with_its_card(hub, capsys):
    """`seqagents zoo --publish ORG`: one repo per bundled checkpoint, named after its folder,
    each with config, weights and a card that names the repo; the login is checked first."""
    from seqagents.zoo import list_entries, zoo_dir

    bundled = {
        Path(e.checkpoint.path).name
        for k, e in list_entries().items()
        if "/" in k and e.checkpoint.path and (zoo_dir() / e.checkpoint.path).is_dir()
    }
    assert main(["zoo", "--publish", "club"]) == 0
    repos = {repo for repo, _ in hub.uploads}
    assert repos == {f"club/{name}" for name in bundled} and "club/dt-breakout" in repos
    for repo, files in hub.uploads:
        assert {"config.json", "model.safetensors", "README.md"} <= set(files)
        assert f'from_pretrained("{repo}")' in files["README.md"].decode()
    assert f"published {len(bundled)} checkpoints to club" in capsys.readouterr().out
    hub.uploads.clear()
    assert main(["zoo", "--publish", "someone-else"]) == 2  # no right to write there
    assert not hub.uploads and "cannot create repos" in _one_line_error(capsys)


def test_the_cards_code_lines_fit_the_line_length_of_the_repository():
    """A long checkpoint name wraps the usage snippet's call as ruff would format it: every
    bundled card stays clean under ``ruff format`` (it checks Python blocks in Markdown)."""
    from seqagents import load_agent

    agent = load_agent("zoo/checkpoints/dt-breakout", device="cpu")
    long_name = "zoo/checkpoints/dt-babyai-gotoobjmaze-s4-privileged-with-a-long-name"
    text = str(model_card(agent.config, "DecisionTransformerAgent", long_name))
    code = text.split("```python", 1)[1].split("```", 1)[0]
    assert max(len(line) for line in code.splitlines()) <= 100
    assert f'    "{long_name}"' in code.splitlines()
