from minicalc import Calculator


def test_session_keeps_variables():
    calc = Calculator()
    assert calc.evaluate("r = 2") == 2
    assert calc.evaluate("r * 3") == 6
    assert calc.variables == {"r": 2}


def test_initial_variables():
    calc = Calculator({"x": 10})
    assert calc.evaluate("x / 4") == 2.5


def test_set_changes_result():
    calc = Calculator()
    calc.set("x", 1)
    assert calc.evaluate("x + 1") == 2
    calc.set("x", 5)
    assert calc.evaluate("x + 1") == 6


def test_compile_caches_trees():
    calc = Calculator()
    assert calc.compile("1 + 2") is calc.compile("1 + 2")


def test_constant_expression_results_are_reused():
    calc = Calculator()
    assert calc.evaluate("2 ^ 8 + 1") == 257
    assert calc.evaluate("2 ^ 8 + 1") == 257
    calc.clear_cache()
    assert calc.evaluate("2 ^ 8 + 1") == 257


def test_chained_assignment():
    calc = Calculator()
    assert calc.evaluate("a = b = 4") == 4
    assert calc.evaluate("a + b") == 8
