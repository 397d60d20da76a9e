"""The CLI behaves the same in every command, as cron jobs rely on: where the workspace
option goes, how a failure is reported (one prefix; a JSON object with ``--json``), the
exit code of "not a workspace", unknown flags, intervals and tickers, and finding the
workspace from a subdirectory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from conftest import run_cli, tree_digest

from core.errors import NotAWorkspaceError
from tui.cli import build_parser, main


def _json_commands() -> list[list[str]]:
    """Every (sub)command with ``--json``, with placeholder values for what it requires."""
    found = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        args, has_json = [], False
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])
            elif "--json" in action.option_strings:
                has_json = True
            elif not action.option_strings and action.dest != "help":
                args.append("AAPL")
            elif action.required:
                args += [action.option_strings[0], *([] if action.nargs == 0 else ["1d"])]
        if has_json:
            found.append([*words, *args, "--json"])

    walk(build_parser(), [])
    return found


JSON_COMMANDS = _json_commands()


def test_every_json_command_is_found():
    commands = [" ".join(c) for c in JSON_COMMANDS]
    for expected in ("health --json", "show AAPL --json", "migrate status --json"):
        assert expected in commands
    assert len(JSON_COMMANDS) >= 20


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_json_command_reports_not_a_workspace_as_json(tmp_path: Path, capsys, command):
    code = main([*command, "-w", str(tmp_path / "missing")])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == report["exit_code"] == NotAWorkspaceError.exit_code == 6
    assert "missing does not exist" in report["error"]
    assert err.startswith("parqctl: error: ") and err.count("\n") == 1


def test_not_a_workspace_has_one_exit_code_in_every_command(tmp_path: Path):
    for command in (["health"], ["disk"], ["lock", "status"], ["migrate", "status"]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 6, (command, result.stderr)
        assert result.stderr.startswith(f"parqctl: error: {tmp_path} is not a parqctl workspace")
    assert list(tmp_path.iterdir()) == []


def test_an_argument_error_with_json_is_json_too(capsys):
    assert main(["health", "--json", "--bogus"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "error": "unrecognized arguments: --bogus: see `parqctl health --help`",
        "exit_code": 2,
    }
    assert err == "parqctl: error: unrecognized arguments: --bogus: see `parqctl health --help`\n"


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["show", "AAPL", "--bogus"], "parqctl show"),
        (["migrate", "plan", "--bogus"], "parqctl migrate plan"),
        (["quarantine", "list", "--bogus"], "parqctl quarantine list"),
        (["migrate", "nope"], "parqctl migrate"),
        (["--bogus"], "parqctl"),
    ],
)
def test_an_unknown_flag_points_at_its_subcommands_help(capsys, argv, where):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("parqctl: error: ") and err.endswith(f"see `{where} --help`\n")


def test_the_workspace_option_goes_before_or_after_the_command(workspace: Path, capsys):
    outputs = []
    for argv in (
        ["-w", str(workspace), "show", "AAPL", "--json"],
        ["show", "AAPL", "-w", str(workspace), "--json"],
        ["show", "--workspace", str(workspace), "AAPL", "--json"],
        ["lock", "-w", str(workspace), "status", "--json"],
        ["lock", "status", "--json", "-w", str(workspace)],
    ):
        assert main(argv) == 0, argv
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0]["rows"] == 3
    assert outputs[3]["state"] == outputs[4]["state"] == "FREE"
    # After the command it wins over the top-level default, never the other way round.
    assert main(["-w", str(workspace / "nowhere"), "show", "AAPL", "-w", str(workspace)]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["availability", "--interval", "5m", "--json"],
        ["integrity", "--interval", "5m", "--json"],
        ["backfill", "--interval", "5m", "--dry-run", "--json"],
        ["show", "AAPL", "--interval", "5m", "--json"],
    ],
)
def test_an_interval_the_workspace_does_not_have_is_an_error(workspace: Path, capsys, argv):
    before = tree_digest(workspace)
    assert main(["-w", str(workspace), *argv]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["error"].startswith("interval 5m is not in this workspace (it has: 1d)")
    assert tree_digest(workspace) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "NOPE", "--json"],
        ["availability", "--ticker", "NOPE", "--json"],
        ["backfill", "--ticker", "NOPE", "--dry-run", "--json"],
    ],
)
def test_a_ticker_the_workspace_does_not_have_is_an_error(workspace: Path, capsys, argv):
    assert main(["-w", str(workspace), *argv]) == 2
    report = json.loads(capsys.readouterr().out)
    assert "no tickers.json entry for NOPE" in report["error"]


def test_a_ticker_without_bars_but_in_tickers_json_is_not_an_error(workspace: Path, capsys):
    (workspace / "stocks_1d" / "AAPL.parquet").unlink()
    assert main(["-w", str(workspace), "show", "AAPL", "--json"]) == 1  # no bars, as before
    assert json.loads(capsys.readouterr().out)["rows"] == 0


def test_the_workspace_is_found_from_a_subdirectory(workspace: Path, tmp_path: Path):
    deep = workspace / "stocks_1d" / "more" / "deeper"
    deep.mkdir(parents=True)
    result = run_cli("show", "AAPL", "--json", cwd=deep)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"] == ["stocks_1d/AAPL.parquet"]
    # A collector workspace without tickers.json is found by its bar folders.
    (workspace / "tickers.json").unlink()
    found = run_cli("disk", "--json", cwd=deep)
    assert json.loads(found.stdout)["workspace"] == str(workspace), found.stderr


def test_a_plain_data_folder_above_does_not_stop_the_walk(tmp_path: Path):
    """``data/`` is too common a name: a parent with an empty one is not a workspace, and
    the error names the directory the command was run in."""
    (tmp_path / "data").mkdir()
    below = tmp_path / "project" / "src"
    below.mkdir(parents=True)
    result = run_cli("health", cwd=below)
    assert result.returncode == 6
    assert f"{below} is not a parqctl workspace" in result.stderr


def test_an_explicit_workspace_is_taken_as_given(workspace: Path):
    """-w names the workspace itself: a subdirectory of one is refused, not walked up from."""
    result = run_cli("-w", str(workspace / "stocks_1d"), "health")
    assert result.returncode == 6
    assert "stocks_1d is not a parqctl workspace" in result.stderr


def test_migrate_status_of_an_unplanned_interval_is_an_error(workspace: Path, capsys):
    assert main(["-w", str(workspace), "migrate", "plan", "--interval", "1d"]) == 0
    capsys.readouterr()
    assert main(["-w", str(workspace), "migrate", "status", "--interval", "5m", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["error"].startswith("us:yahoo 5m is not in the migration plan")
    assert main(["-w", str(workspace), "migrate", "status", "--interval", "1d", "--json"]) == 0
    assert [s["interval"] for s in json.loads(capsys.readouterr().out)] == ["1d"]
