"""`servicectl completion bash|zsh|fish`: scripts derived from the parser, tried in the shells.

The tree comes from the parser, so every command and option must appear; the
bash script is run in bash with simulated command lines. zsh and fish are
checked when they are installed (syntax for zsh, real completions for fish).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from servicectl import completion
from servicectl.parser import build_parser, expand_shorthands


def tree() -> completion.Command:
    return completion.describe(build_parser())


def test_the_tree_is_the_parser() -> None:
    root = tree()
    names = [c.name for c in root.subcommands]
    for name in ("deploy", "env", "health", "scale", "completion", "ls", "logs"):
        assert name in names
    env = next(c for c in root.subcommands if c.name == "env")
    assert [c.name for c in env.subcommands] == ["list", "set", "unset"]
    deploy = next(c for c in root.subcommands if c.name == "deploy")
    by_flag = {f: o for o in deploy.options for f in o.flags}
    assert by_flag["--env-file"].complete == "file" and by_flag["--env-file"].repeatable
    assert by_flag["--tag"].takes_value and not by_flag["--detach"].takes_value
    assert "-t" in by_flag["--tag"].flags
    shells = next(c for c in root.subcommands if c.name == "completion")
    assert shells.positionals[0].choices == ("bash", "zsh", "fish")
    paths = [" ".join(p) for p, _ in completion.walk(root)]
    assert "servicectl env set" in paths and paths[0] == "servicectl"


@pytest.mark.parametrize(
    ("argv", "expanded"),
    [
        (["env", "web"], ["env", "list", "web"]),
        (["env", "--show", "web"], ["env", "list", "--show", "web"]),
        (["env", "set", "web", "A=1"], ["env", "set", "web", "A=1"]),
        (["env", "list", "set"], ["env", "list", "set"]),  # a service named "set"
        (["env", "--help"], ["env", "--help"]),
        (["deploy", "env"], ["deploy", "env"]),
    ],
)
def test_env_shorthand(argv: list[str], expanded: list[str]) -> None:
    assert expand_shorthands(argv) == expanded
    if "--help" not in argv:
        build_parser().parse_args(expanded)  # parses


BASH_CASES = [
    (["servicectl", "de"], ["delete", "deploy"]),
    (["servicectl", "env", ""], ["list", "set", "unset"]),
    (["servicectl", "env", "set", "web", "--t"], ["--timeout"]),
    (["servicectl", "deploy", "web", "--me"], ["--memory-reservation", "--memory-limit"]),
    (["servicectl", "deploy", "web", "--tag", "v1", "--js"], ["--json"]),
    (["servicectl", "completion", ""], ["bash", "zsh", "fish"]),
    (["servicectl", "completion", "z"], ["zsh"]),
    (["servicectl", "deploy", "web", "--env-file", "FILES/a"], ["FILES/a.env"]),
    (["servicectl", "push", "web", "FILES/"], ["FILES/ctx"]),  # a directory: DIR
    (["servicectl", "deploy", "web", "--tag", ""], []),  # a value: nothing to offer
]


def test_bash_completes(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("A=1\n")
    (tmp_path / "ctx").mkdir()
    script = tmp_path / "servicectl.bash"
    script.write_text(completion.script(build_parser(), "bash"))
    lines = [f"source {script}"]
    for words, _ in BASH_CASES:
        quoted = " ".join(f"'{w.replace('FILES', str(tmp_path))}'" for w in words)
        lines += [
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; COMPREPLY=()",
            '_servicectl; echo "${COMPREPLY[*]}"',
        ]
    r = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    got = r.stdout.replace(str(tmp_path), "FILES").splitlines()
    assert got == [" ".join(expected) for _, expected in BASH_CASES]


def test_zsh_script_is_valid(tmp_path: Path) -> None:
    script = tmp_path / "_servicectl"
    script.write_text(completion.script(build_parser(), "zsh"))
    r = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    text = script.read_text()
    assert text.startswith("#compdef servicectl\n")
    assert "_servicectl_env_set() {" in text
    assert "'*'--env-file'[NAME=VALUE lines to set" in text and ":F:_files'" in text


def test_fish_completes(tmp_path: Path) -> None:
    script = tmp_path / "servicectl.fish"
    script.write_text(completion.script(build_parser(), "fish"))
    queries = [
        "servicectl de",
        "servicectl env ",
        "servicectl env set web --ti",
        "servicectl completion ",
    ]
    body = "; ".join(f"complete -C '{q}'; echo ---" for q in queries)
    r = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; {body}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    answers = [
        [line.split("\t")[0] for line in block.strip().splitlines()]
        for block in r.stdout.split("---")[:-1]
    ]
    assert answers == [
        ["delete", "deploy"],
        ["list", "set", "unset"],
        ["--timeout"],
        ["bash", "fish", "zsh"],
    ]
