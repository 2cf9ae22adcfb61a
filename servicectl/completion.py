"""Shell completion scripts for bash, zsh and fish, derived from the argparse parser. Pure.

No command or option is written down here: `describe` walks the parser
(subcommands, options, positionals, choices, and the file/directory marks of
`servicectl.parser.completes`) into a `Command` tree, and one generator per
shell turns the tree into a script. A new command or option completes as soon
as the parser has it. Service names are not completed: that would ask the API
at every Tab. No I/O.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass

from servicectl.parser import COMPLETES

PROG = "servicectl"


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    repeatable: bool
    complete: str  # "file", "dir" or ""
    choices: tuple[str, ...]
    metavar: str


@dataclass(frozen=True)
class Positional:
    metavar: str
    help: str
    complete: str
    choices: tuple[str, ...]
    many: bool  # takes one or more words


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[Command, ...]


def _choices(action: argparse.Action) -> tuple[str, ...]:
    return tuple(str(c) for c in action.choices) if action.choices else ()


def describe(parser: argparse.ArgumentParser, name: str = PROG, help: str = "") -> Command:
    """The command tree of `parser` (argparse has no public API for this: `_actions` it is)."""
    options: list[Option] = []
    positionals: list[Positional] = []
    subcommands: list[Command] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        complete = getattr(action, COMPLETES, "")
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for sub_name, sub in action.choices.items():
                subcommands.append(describe(sub, sub_name, helps.get(sub_name, "")))
        elif action.option_strings:
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            options.append(
                Option(
                    flags=tuple(action.option_strings),
                    help=action.help or "",
                    takes_value=action.nargs != 0,
                    repeatable=isinstance(action, argparse._AppendAction),
                    complete=complete,
                    choices=_choices(action),
                    metavar=metavar,
                )
            )
        else:
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest
            positionals.append(
                Positional(
                    metavar=metavar,
                    help=action.help or "",
                    complete=complete,
                    choices=_choices(action),
                    many=action.nargs in ("+", "*"),
                )
            )
    return Command(name, help, tuple(options), tuple(positionals), tuple(subcommands))


def walk(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command with its path (`("servicectl", "env", "set")`), parents first."""
    here = (*path, command.name)
    yield here, command
    for sub in command.subcommands:
        yield from walk(sub, here)


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    root = describe(parser)
    match shell:
        case "bash":
            return bash(root)
        case "zsh":
            return zsh(root)
        case "fish":
            return fish(root)
    raise ValueError(f"no completion for shell {shell!r}")


def _value_kind(complete: str, choices: tuple[str, ...]) -> str:
    if choices:
        return "choices " + " ".join(choices)
    return complete


# ---------------------------------------------------------------- bash
def _case(function: str, doc: str, arms: list[tuple[list[str], str]]) -> list[str]:
    lines = [f"{function}() {{  # {doc}", '    case "$*" in']
    for patterns, value in arms:
        lines.append(f"        {'|'.join(patterns)}) echo {_sh_quote(value)} ;;")
    return [*lines, "    esac", "}"]


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def bash(root: Command) -> str:
    subcommands: list[tuple[list[str], str]] = []
    options: list[tuple[list[str], str]] = []
    values: list[tuple[list[str], str]] = []
    positionals: list[tuple[list[str], str]] = []
    for path, command in walk(root):
        key = " ".join(path)
        if command.subcommands:
            subcommands.append(([f'"{key}"'], " ".join(c.name for c in command.subcommands)))
        options.append(([f'"{key}"'], " ".join(f for o in command.options for f in o.flags)))
        for o in command.options:
            if o.takes_value:
                kind = _value_kind(o.complete, o.choices) or "value"
                values.append(([f'"{key} {flag}"' for flag in o.flags], kind))
        many = []
        for i, p in enumerate(command.positionals):
            if kind := _value_kind(p.complete, p.choices):
                positionals.append(([f'"{key} {i}"'], kind))
                if p.many:
                    many.append(([f'"{key} "*'], kind))
        positionals += many
    lines = [
        f"# bash completion for {PROG} (generated by `{PROG} completion bash`)",
        f"# load it with: source <({PROG} completion bash)",
        "",
        *_case(f"_{PROG}_subcommands", "the subcommands of command $*", subcommands),
        *_case(f"_{PROG}_options", "the options of command $*", options),
        *_case(
            f"_{PROG}_option_value",
            "what the value of option $2 of command $1 is (empty: it takes none)",
            values,
        ),
        *_case(f"_{PROG}_positional", "what positional argument $2 (from 0) of $1 is", positionals),
        "",
        _BASH_MAIN.replace("PROG", PROG),
    ]
    return "\n".join(lines) + "\n"


_BASH_MAIN = r"""_PROG() {
    local cur=${COMP_WORDS[COMP_CWORD]} path=PROG word kind i npos=0 skip=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if ((skip)); then
            skip=0
        elif [[ $word == -* ]]; then
            [[ -n $(_PROG_option_value "$path" "$word") ]] && skip=1
        elif [[ " $(_PROG_subcommands "$path") " == *" $word "* ]]; then
            path="$path $word"
            npos=0
        else
            npos=$((npos + 1))
        fi
    done
    if ((skip)); then
        kind=$(_PROG_option_value "$path" "${COMP_WORDS[COMP_CWORD - 1]}")
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_PROG_options "$path")" -- "$cur"))
        return
    elif [[ -n $(_PROG_subcommands "$path") ]]; then
        COMPREPLY=($(compgen -W "$(_PROG_subcommands "$path")" -- "$cur"))
        return
    else
        kind=$(_PROG_positional "$path" "$npos")
    fi
    case $kind in
        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        "choices "*) COMPREPLY=($(compgen -W "${kind#choices }" -- "$cur")) ;;
        *) COMPREPLY=() ;;
    esac
}
complete -F _PROG PROG"""


# ---------------------------------------------------------------- zsh
def _zsh_text(text: str) -> str:
    """Text inside a single-quoted `_arguments` spec: quotes, brackets and colons escaped."""
    text = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")
    return text.replace("'", "'\\''")


def _zsh_quote(text: str) -> str:
    return text.replace("'", "'\\''")


def _zsh_action(complete: str, choices: tuple[str, ...]) -> str:
    if choices:
        return "(" + " ".join(choices) + ")"
    return {"file": "_files", "dir": "_files -/"}.get(complete, " ")


def _zsh_option(o: Option) -> str:
    value = f":{_zsh_text(o.metavar)}:{_zsh_action(o.complete, o.choices)}" if o.takes_value else ""
    text = f"[{_zsh_text(o.help)}]{value}'"
    if o.repeatable:
        flags = o.flags[0] if len(o.flags) == 1 else "{" + ",".join(o.flags) + "}"
        return f"'*'{flags}'{text}"
    if len(o.flags) == 1:
        return f"'{o.flags[0]}{text}"
    exclusive = "(" + " ".join(o.flags) + ")"
    return f"'{exclusive}'{{{','.join(o.flags)}}}'{text}"


def _zsh_function(path: tuple[str, ...]) -> str:
    return "_" + "_".join(p.replace("-", "_") for p in path)


def zsh(root: Command) -> str:
    out = [
        f"#compdef {PROG}",
        f"# zsh completion for {PROG} (generated by `{PROG} completion zsh`): put it in a",
        f"# directory of $fpath as _{PROG}, or load it with: source <({PROG} completion zsh)",
        "",
    ]
    for path, command in walk(root):
        specs = [_zsh_option(o) for o in command.options]
        out.append(f"{_zsh_function(path)}() {{")
        if command.subcommands:
            out += [
                '    local curcontext="$curcontext" state line',
                "    typeset -A opt_args",
                "    _arguments -C \\",
                *[f"        {spec} \\" for spec in specs],
                "        '1: :->command' \\",
                "        '*:: :->args'",
                "    case $state in",
                "        command)",
                "            local -a commands",
                "            commands=(",
                *[
                    f"                '{_zsh_text(c.name)}:{_zsh_quote(c.help)}'"
                    for c in command.subcommands
                ],
                "            )",
                f"            _describe -t commands '{' '.join(path)} command' commands",
                "            ;;",
                "        args)",
                "            case $line[1] in",
                *[
                    f"                {c.name}) {_zsh_function((*path, c.name))} ;;"
                    for c in command.subcommands
                ],
                "            esac",
                "            ;;",
                "    esac",
            ]
        else:
            for i, p in enumerate(command.positionals, start=1):
                action = _zsh_action(p.complete, p.choices)
                position = "*" if p.many else str(i)
                specs.append(f"'{position}:{_zsh_text(p.metavar)}:{action}'")
            out.append("    _arguments \\")
            out += [f"        {spec} \\" for spec in specs[:-1]]
            out.append(f"        {specs[-1]}" if specs else "        ''")
        out += ["}", ""]
    out += [
        f"if [[ $funcstack[1] == {_zsh_function((PROG,))} ]]; then",
        f'    {_zsh_function((PROG,))} "$@"',
        "else",
        f"    compdef {_zsh_function((PROG,))} {PROG}",
        "fi",
    ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- fish
def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(root: Command) -> str:
    paths = [" ".join(path) for path, _ in walk(root)]
    out = [
        f"# fish completion for {PROG} (generated by `{PROG} completion fish`): save it as",
        f"# ~/.config/fish/completions/{PROG}.fish",
        f"set -g __{PROG}_commands " + " ".join(_fish_quote(p) for p in paths),
        "",
        f"function __{PROG}_path --description 'the {PROG} command being completed'",
        f"    set -l path {PROG}",
        "    set -l words (commandline -opc)",
        "    set -e words[1]",
        "    for word in $words",
        f'        if contains -- "$path $word" $__{PROG}_commands',
        '            set path "$path $word"',
        "        end",
        "    end",
        "    echo $path",
        "end",
        "",
        f"function __{PROG}_is --description 'is the {PROG} command being completed this one'",
        f'    test (__{PROG}_path) = "$argv"',
        "end",
        "",
        f"complete -c {PROG} -f",
    ]
    for path, command in walk(root):
        when = f"-n {_fish_quote(f'__{PROG}_is ' + ' '.join(path))}"
        for c in command.subcommands:
            out.append(f"complete -c {PROG} {when} -a {c.name} -d {_fish_quote(c.help)}")
        for o in command.options:
            parts = [f"complete -c {PROG} {when}"]
            for flag in o.flags:
                if flag.startswith("--"):
                    parts.append(f"-l {flag[2:]}")
                elif len(flag) == 2:
                    parts.append(f"-s {flag[1:]}")
                else:
                    parts.append(f"-o {flag[1:]}")
            if o.takes_value:
                parts.append("-r")
                if o.choices:
                    parts.append(f"-a {_fish_quote(' '.join(o.choices))}")
                elif o.complete == "file":
                    parts.append("-F")
                elif o.complete == "dir":
                    parts.append("-a '(__fish_complete_directories)'")
            parts.append(f"-d {_fish_quote(o.help)}")
            out.append(" ".join(parts))
        for p in command.positionals:
            if p.choices:
                out.append(f"complete -c {PROG} {when} -a {_fish_quote(' '.join(p.choices))}")
            elif p.complete == "file":
                out.append(f"complete -c {PROG} {when} -F")
            elif p.complete == "dir":
                out.append(f"complete -c {PROG} {when} -a '(__fish_complete_directories)'")
    return "\n".join(out) + "\n"
