"""The code expert: from the question text alone, its Python code prints answers reasoning-gym scores 1.0."""

import json
import subprocess
import sys

import pytest

from agentenv.envs.code import solvers
from agentenv.envs.code.solvers import FAMILIES, UnsolvableTask, answer_from_output, solution_code

rg = pytest.importorskip("reasoning_gym")

# Two seeds far enough apart that their entries do not overlap (reasoning-gym seeds entry i with seed + i).
SEEDS = (1234, 5678)
SIZE = 25

# Runs each snippet like a fresh interpreter would: own globals, own decimal context, its stdout captured.
_DRIVER = r"""
import contextlib, decimal, io, json, sys, traceback

outputs = []
for code in json.load(sys.stdin):
    buffer = io.StringIO()
    try:
        with decimal.localcontext(), contextlib.redirect_stdout(buffer):
            exec(compile(code, "<solution>", "exec"), {"__name__": "__main__"})
    except Exception:
        buffer.write("\n" + traceback.format_exc())
    outputs.append(buffer.getvalue())
json.dump(outputs, sys.stdout)
"""


def _run_batch(codes: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER], input=json.dumps(codes), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def solved() -> dict[str, list[tuple]]:
    """Per family: (dataset, entry, code, stdout) for SIZE entries of each seed, all snippets run in one subprocess."""
    tasks = []
    for family in FAMILIES:
        for seed in SEEDS:
            ds = rg.create_dataset(family, size=SIZE, seed=seed)
            tasks += [(family, ds, ds[i]) for i in range(SIZE)]
    codes = [solution_code(family, entry["question"]) for family, _, entry in tasks]
    outputs = _run_batch(codes)
    result: dict[str, list] = {family: [] for family in FAMILIES}
    for (family, ds, entry), code, stdout in zip(tasks, codes, outputs, strict=True):
        result[family].append((ds, entry, code, stdout))
    return result


def test_families_are_varied_and_known_to_reasoning_gym():
    assert len(FAMILIES) >= 8
    assert len(set(FAMILIES)) == len(FAMILIES)
    for family in FAMILIES:
        rg.create_dataset(family, size=1, seed=0)  # raises for an unknown name


def test_the_expert_scores_1_on_every_family(solved):
    means, failures = {}, []
    for family, rows in solved.items():
        scores = []
        for ds, entry, code, stdout in rows:
            answer = answer_from_output(family, stdout)
            score = ds.score_answer(answer=answer, entry=entry)
            scores.append(score)
            if score != 1.0:
                failures.append(f"{family}: {entry['question']!r}\n{code}--> {answer!r} scored {score}")
        means[family] = sum(scores) / len(scores)
        assert len(scores) == len(SEEDS) * SIZE
    assert not failures, "\n\n".join(failures[:5]) + f"\n\nmeans: {means}"
    assert all(mean == 1.0 for mean in means.values()), means


def test_the_code_runs_standalone_and_prints_the_answer_last():
    # One real `python -c` per family: the code is self-contained (stdlib only, nothing from the expert).
    for family in FAMILIES:
        ds = rg.create_dataset(family, size=1, seed=SEEDS[0])
        entry = ds[0]
        done = subprocess.run(
            [sys.executable, "-c", solution_code(family, entry["question"])], capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, (family, done.stderr)
        assert ds.score_answer(answer=answer_from_output(family, done.stdout), entry=entry) == 1.0, family


def test_the_expert_module_imports_no_third_party_package():
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(solvers.__file__.rsplit('/', 1)[0])!r}); "
         "import solvers; print(sorted(m for m in sys.modules if m.split('.')[0] in {'reasoning_gym', 'agentenv'}))"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_garbled_questions_are_unsolvable():
    for family in FAMILIES:
        for question in ("", "Lorem ipsum dolor sit amet?", "Calculate banana = ?", "Solve for x: y = @@"):
            with pytest.raises(UnsolvableTask):
                solution_code(family, question)
    with pytest.raises(UnsolvableTask, match="no solver"):
        solution_code("no_such_family", "Calculate 1 + 1.")
    assert issubclass(UnsolvableTask, ValueError)


def test_ill_posed_reasoning_gym_questions_are_declined():
    # reasoning-gym's sympy sometimes collapses the equation (a factor 0): every value solves it, one is expected.
    with pytest.raises(UnsolvableTask, match="does not contain"):
        solution_code("simple_equations", "Solve for i: 0 = 0")
    # It writes 0 in base-N as "" and expects "" back, which its scorer never rewards.
    base_question = "Now, convert the base-8 number  to base-15\n"
    with pytest.raises(UnsolvableTask, match="empty answer"):
        solution_code("base_conversion", base_question)
    assert "format(0" in solution_code("base_conversion", "Now, convert the base-8 number  to binary\n")
    # It shifts the corpus's "AËRIAL" as if Ë were ASCII, so the expected Ë cannot be recovered from the cipher.
    cipher = "DA UWRRNAKPI OQVKXG RQYGT HQT CKTKCN VJGA JCXG IKXGP VQ EQOOGTEG C OKIJVA KORGVWU"
    with pytest.raises(UnsolvableTask, match="AËRIAL"):
        solution_code("caesar_cipher", f"Decrypt this Caesar cipher text: {cipher}. Provide only the decrypted text.")


def test_answer_from_output_takes_the_last_non_empty_line():
    assert answer_from_output("gcd", "working...\n  12  \n\n") == "12"
    assert answer_from_output("gcd", "") == ""
