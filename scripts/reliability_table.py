"""Run the reliability suite and write docs/reliability.md: each row of the reliability guide's §4 with its
tests, the backends they ran on, pass/fail and what they measured.

    .venv/bin/python scripts/reliability_table.py            # CI sizes, writes docs/reliability.md
    .venv/bin/python scripts/reliability_table.py --long     # release sizes (soak, churn, fuzz at full size)
    .venv/bin/python scripts/reliability_table.py --from-log LOG   # only format an earlier run's log

Tests belong to a row by name (``test_f04_...``, ``test_i02_i10_...``) or through ``EXTRA`` below; each
records its measures with the ``reliability`` fixture (tests/conftest.py), which this script collects
through ``$AGENTENV_RELIABILITY_LOG``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SECTIONS = {"I": "4.1 Isolation", "B": "4.2 Bad input", "F": "4.3 Faults", "L": "4.4 Load and soak"}
ROWS = {
    "I01": "fail_closed_selfcheck", "I02": "root_launcher_caps", "I03": "fs_write_outside_ws",
    "I04": "symlink_hardlink_escape", "I05": "secret_read_probe", "I06": "pid_visibility_and_kill_out",
    "I07": "egress_default_deny", "I08": "host_service_reach", "I09": "allowlist_proxy_semantics",
    "I10": "privilege_escalation", "I11": "host_side_git_hooks", "I12": "cross_episode_reset",
    "I13": "cross_tenant", "I14": "browser_isolation", "I15": "bwrap_argv_no_secrets",
    "B01": "fork_bomb", "B02": "memory_bomb", "B03": "cpu_spin_and_block", "B04": "orphans_grandchild_pipe",
    "B05": "zombie_storm", "B06": "output_flood", "B07": "bytes_garbage", "B08": "disk_and_inode_fill",
    "B09": "fd_exhaustion", "B10": "long_action", "B11": "malformed_tool_json", "B12": "shell_traps",
    "B13": "interactive_programs", "B14": "kernel_killers", "B15": "prompt_injection_web", "B16": "hostile_pages",
    "B17": "timeout_arg_abuse", "B18": "path_abuse_in_file_api",
    "F01": "env_server_sigkill_mid_step", "F02": "sandbox_killed_mid_command",
    "F03": "hung_tool_server_side_cancel", "F04": "policy_5xx_429_reset", "F05": "policy_stall_slowloris",
    "F06": "policy_malformed_response", "F07": "policy_version_change_mid_episode",
    "F08": "collector_sigkill_and_resume", "F09": "duplicate_delivery", "F10": "disk_full_and_eio",
    "F11": "docker_runtime_faults", "F12": "ttl_vs_deadline_ordering", "F13": "reset_hang",
    "F14": "partial_group_policy", "F15": "control_plane_under_load", "F16": "grader_crash_timeout",
    "F17": "browser_process_crash", "F18": "network_partition_and_pause", "F19": "recovery_staleness",
    "L01": "concurrent_episodes", "L02": "adversarial_soak", "L03": "sandbox_churn_local", "L04": "docker_churn",
    "L05": "noisy_neighbour", "L06": "slow_consumer_backpressure", "L07": "policy_saturation",
    "L08": "long_horizon", "L09": "api_fuzz",
}
#: the files holding the rows' tests
TEST_FILES = [
    "tests/reliability", "tests/sandboxes/test_isolation.py", "tests/sandboxes/test_bad_input.py",
    "tests/sandboxes/test_contract.py", "tests/envs/web/test_hostile.py", "tests/agentenv/test_messages.py",
    "tests/agentenv/test_parsing_fuzz.py", "tests/envs/test_code_kernel.py", "tests/envs/test_swe.py",
    "tests/test_census.py",
]
#: tests of a row whose names do not start with its id (they were written before the table)
EXTRA = {
    "test_special_token_strings_in_env_text_are_tokenized_as_text": ["B15"],
    "test_injected_text_and_egress_reach_nothing": ["B15", "I14"],
    "test_a_huge_dom_is_capped_and_answers_in_time": ["B16"],
    "test_dialog_loops_and_popup_storms_are_contained": ["B16"],
    "test_never_ending_loads_downloads_and_local_files_are_refused": ["B16", "I14"],
    "test_a_new_episode_sees_nothing_of_the_last": ["I14"],
    "test_a_browser_killed_mid_collection_fails_that_episode_and_the_run_goes_on": ["F17"],
}
ROW_PREFIX = re.compile(r"^test_((?:[ibfl]\d\d_)+)")
BACKENDS = ("bwrap", "docker", "subprocess", "http", "ws", "chromium", "ray")


def rows_of(test: str) -> list[str]:
    match = ROW_PREFIX.match(test)
    found = [r.upper() for r in match.group(1).strip("_").split("_")] if match else []
    return found + [r for r in EXTRA.get(test, []) if r not in found]


def run_suite(log: Path, extra: list[str]) -> int:
    env = {**os.environ, "AGENTENV_RELIABILITY_LOG": str(log)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TEST_FILES, *extra]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def collect(log: Path) -> dict[str, dict]:
    """Per test node: outcome, duration, backend and measures."""
    nodes: dict[str, dict] = defaultdict(dict)
    for line in log.read_text().splitlines():
        record = json.loads(line)
        node = nodes[record["nodeid"]]
        if "outcome" in record:
            node["outcome"], node["duration_s"] = record["outcome"], record["duration_s"]
        if record.get("backend"):
            node["backend"] = record["backend"]
        node.setdefault("measures", {}).update(record.get("measures") or {})
    return nodes


def _backend(nodeid: str, node: dict) -> str:
    if node.get("backend"):
        return str(node["backend"])
    params = nodeid.partition("[")[2].rstrip("]")
    for part in re.split(r"[-_]", params):
        if part in BACKENDS:
            return part
    return "local"


def _measure_text(values: dict) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def table(nodes: dict[str, dict], long: bool) -> str:
    by_row: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for nodeid, node in nodes.items():
        if "outcome" not in node:
            continue
        test = nodeid.split("::")[-1].partition("[")[0]
        for row in rows_of(test):
            by_row[row].append((nodeid, node))
    lines = [
        "# Reliability: every row of the guide's §4, tested",
        "",
        f"Generated by `scripts/reliability_table.py{' --long' if long else ''}` on "
        f"{time.strftime('%Y-%m-%d')} ({platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}); {'release' if long else 'CI (short default)'} sizes. Do not edit by hand.",
        "Each row's tests end in the work ledger's L1-L3 check and the resource census where the row owns work "
        "or resources (`agentenv.ledger`, `agentenv.census`). Long rows run short by default; `pytest --long` "
        "(or this script with `--long`) runs the release sizes.",
        "",
    ]
    intro = len(lines)
    summary = []
    for letter, title in SECTIONS.items():
        rows = [r for r in ROWS if r.startswith(letter)]
        passed = sum(bool(by_row[r]) and all(n["outcome"] == "passed" for _, n in by_row[r]) for r in rows)
        summary.append(f"| {title} | {len(rows)} | {passed} | {sum(not by_row[r] for r in rows)} |")
        lines += [f"## {title}", "", "| ID | row | tests | backends | result | measures |", "|---|---|---|---|---|---|"]
        for row in rows:
            tests = by_row[row]
            if not tests:
                lines.append(f"| {row} | `{ROWS[row]}` | - | - | **not run** | |")
                continue
            names = sorted({n.split("::")[-1].partition("[")[0] for n, _ in tests})
            backends = sorted({_backend(n, node) for n, node in tests})
            outcomes = [node["outcome"] for _, node in tests]
            result = ("pass" if all(o == "passed" for o in outcomes)
                      else "**FAIL**" if "failed" in outcomes else "skipped")
            measures = "; ".join(t for t in (_measure_text(node.get("measures", {})) for _, node in tests) if t)
            lines.append(f"| {row} | `{ROWS[row]}` | {'<br>'.join(f'`{n}`' for n in names)} | {', '.join(backends)} "
                         f"| {result} ({len(outcomes)}) | {measures} |")
        lines.append("")
    head = ["## Summary", "", "| section | rows | passing | without a test |", "|---|---|---|---|", *summary, ""]
    return "\n".join(lines[:intro] + head + lines[intro:]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--long", action="store_true", help="release sizes (passes --long to pytest)")
    parser.add_argument("--from-log", type=Path, help="format this log instead of running the suite")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args, extra = parser.parse_known_args()
    if args.from_log:
        log, code = args.from_log, 0
    else:
        log = Path(tempfile.mkstemp(prefix="agentenv-reliability-", suffix=".jsonl")[1])
        code = run_suite(log, ["--long", *extra] if args.long else extra)
    args.out.write_text(table(collect(log), args.long))
    print(f"wrote {args.out} (log: {log})")
    return code


if __name__ == "__main__":
    sys.exit(main())
