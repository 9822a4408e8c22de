"""ExecutionChecker: gold caching, SELECT rules, DML judged by state, diagnostics."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from sqlgrpo.sql import ErrorClass, ExecutionChecker, SandboxLimits

CONTEXT = (
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);"
    " CREATE TABLE sales (product_id INT, qty INT);"
    " INSERT INTO products VALUES (1, 'Pen', 'office', 1.5), (2, 'Desk', 'furniture', 120.0),"
    " (3, 'Lamp', 'furniture', 35.25), (4, 'Ink', 'office', 7.0);"
    " INSERT INTO sales VALUES (1, 10), (2, 1), (4, 3), (1, 5);"
)
SELECT_GOLD = "SELECT name FROM products WHERE category = 'furniture'"
DML_GOLD = "UPDATE products SET price = price * 2 WHERE category = 'office'"


@pytest.fixture()
def checker() -> ExecutionChecker:
    return ExecutionChecker(limits=SandboxLimits(timeout_s=1.0))


@pytest.mark.parametrize(
    ("pred", "match", "similarity", "executed", "type_match", "error_class"),
    [
        ("SELECT name FROM products WHERE category = 'furniture'", True, 1.0, True, True, None),
        ("SELECT name FROM products WHERE price > 30", True, 1.0, True, True, None),
        ("SELECT name FROM products WHERE price > 5", False, 2 / 3, True, True, None),
        ("SELECT name FROM products", False, 0.5, True, True, None),
        ("SELECT id FROM products WHERE category = 'furniture'", False, 0.0, True, True, None),
        ("SELECT nam FROM products", False, 0.0, False, True, ErrorClass.MISSING_COLUMN),
        ("DELETE FROM products", False, 0.0, True, False, None),
    ],
)
def test_select_gold(checker, pred, match, similarity, executed, type_match, error_class) -> None:
    outcome = checker.check(pred, SELECT_GOLD, sql_context=CONTEXT)
    assert outcome.gold_kind == "select_rows"
    assert outcome.match is match
    assert outcome.similarity == pytest.approx(similarity)
    assert outcome.executed is executed
    assert outcome.statement_type_match is type_match
    assert outcome.error_class is error_class


def test_no_sql_extracted(checker: ExecutionChecker) -> None:
    outcome = checker.check(None, SELECT_GOLD, sql_context=CONTEXT)
    assert outcome.pred is None and not outcome.executed and not outcome.match
    assert json.loads(json.dumps(outcome.to_dict()))["pred_type"] is None


@pytest.mark.timeout(60)  # a DML gold run on the shared base would hang backup()
def test_dml_gold_in_a_batch_is_judged_by_state(checker: ExecutionChecker) -> None:
    batch = {
        DML_GOLD: True,
        "UPDATE products SET price = 2 * price WHERE id IN (1, 4)": True,
        "update products set price = price + price where category like 'OFFICE'": True,
        "UPDATE products SET price = price * 2": False,
        "UPDATE products SET price = price * 2 WHERE category = 'furniture'": False,
        "SELECT * FROM products": False,
        "DELETE FROM products; UPDATE products SET price = 0": False,
        "UPDATE product SET price = price * 2": False,
    }
    for pred, expected in batch.items():
        outcome = checker.check(pred, DML_GOLD, sql_context=CONTEXT)
        assert outcome.gold_kind == "dml"
        assert outcome.match is expected, pred
    # The gold ran once and was cached; nothing leaked into the shared database.
    assert checker.gold_result(DML_GOLD, sql_context=CONTEXT) is outcome.gold
    assert outcome.gold.rowcount == 2
    after = checker.check(SELECT_GOLD, SELECT_GOLD, sql_context=CONTEXT)
    assert after.match
    prices = checker.database(sql_context=CONTEXT).run("SELECT sum(price) FROM products")
    assert prices.rows == [(163.75,)]


def test_dml_that_changes_nothing_matches_only_another_write(checker: ExecutionChecker) -> None:
    gold = "DELETE FROM products WHERE price > 1000"
    assert checker.check("DELETE FROM sales WHERE qty > 99", gold, sql_context=CONTEXT).match
    select = checker.check("SELECT 1", gold, sql_context=CONTEXT)
    assert not select.match and not select.statement_type_match


def test_stacked_gold_statements_run_as_a_script(checker: ExecutionChecker) -> None:
    gold = "INSERT INTO sales VALUES (3, 1); INSERT INTO sales VALUES (3, 2);"
    same = checker.check("INSERT INTO sales VALUES (3, 1), (3, 2)", gold, sql_context=CONTEXT)
    assert same.gold.ok and same.match
    stacked = checker.check(gold, gold, sql_context=CONTEXT)
    assert stacked.error_class is ErrorClass.MULTIPLE_STATEMENTS and not stacked.match


def test_prediction_equal_to_the_gold_takes_the_gold_result(checker: ExecutionChecker) -> None:
    gold = "SELECT abs(random()) % 1000000 AS r"  # two runs would differ
    outcome = checker.check(f"  {gold} ;\n", gold, sql_context=CONTEXT)
    assert outcome.match and outcome.pred is checker.gold_result(gold, sql_context=CONTEXT)
    dml = checker.check(DML_GOLD + ";", DML_GOLD, sql_context=CONTEXT)
    assert dml.match and dml.pred.state is not None


def test_gold_script_text_as_prediction_is_still_stacked(checker: ExecutionChecker) -> None:
    gold = "INSERT INTO sales VALUES (3, 1); SELECT COUNT(*) FROM sales"
    outcome = checker.check(gold, gold, sql_context=CONTEXT)
    assert checker.gold_result(gold, sql_context=CONTEXT).ok
    assert not outcome.executed and outcome.error_class is ErrorClass.MULTIPLE_STATEMENTS


def test_empty_gold_is_flagged(checker: ExecutionChecker) -> None:
    gold = "SELECT name FROM products WHERE price > 1000"
    outcome = checker.check("SELECT name FROM products WHERE id = 99", gold, sql_context=CONTEXT)
    assert outcome.gold_kind == "select_empty" and outcome.match
    assert outcome.to_dict()["gold_kind"] == "select_empty"


def test_order_matters_only_when_gold_orders(checker: ExecutionChecker) -> None:
    ordered = "SELECT name FROM products ORDER BY price DESC"
    reversed_ = checker.check(
        "SELECT name FROM products ORDER BY price", ordered, sql_context=CONTEXT
    )
    assert reversed_.order_matters and not reversed_.match and reversed_.similarity == 1.0
    unordered = checker.check(
        "SELECT name FROM products ORDER BY price", "SELECT name FROM products", sql_context=CONTEXT
    )
    assert not unordered.order_matters and unordered.match


def test_gold_error_never_matches(checker: ExecutionChecker) -> None:
    gold = "SELECT DATE_FORMAT(name, '%Y') FROM products"
    outcome = checker.check(gold, gold, sql_context=CONTEXT)
    assert outcome.gold_kind == "gold_error" and not outcome.match
    assert outcome.gold.error_class is ErrorClass.UNKNOWN_FUNCTION


def test_bad_db_path_is_reported_not_raised(checker: ExecutionChecker, tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    outcome = checker.check("SELECT 1", "SELECT 1", db_path=str(missing))
    assert outcome.gold_kind == "gold_error" and not outcome.match
    assert "nope.sqlite" in (outcome.gold.error_message or "")
    assert not missing.exists()


def test_to_dict_is_json_safe_and_has_no_rows(checker: ExecutionChecker) -> None:
    big = (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 5000) SELECT x FROM r"
    )
    outcome = checker.check(big, SELECT_GOLD, sql_context=CONTEXT)
    data = outcome.to_dict()
    text = json.dumps(data)
    assert data["pred_rows"] == 5000 and len(text) < 2000
    assert data["error_class"] is None and data["similarity"] == 0.0


def test_hostile_prediction_cannot_break_the_checker(checker: ExecutionChecker) -> None:
    for pred in ["SELECT '\ud800'", "SELECT 1;\x00", "ATTACH 'x.db' AS x", "x" * 2_000_000]:
        outcome = checker.check(pred, SELECT_GOLD, sql_context=CONTEXT)
        assert not outcome.executed and outcome.error_class is not None


def test_gold_cache_is_bounded() -> None:
    checker = ExecutionChecker(max_gold_entries=2)
    first = checker.gold_result("SELECT 1", sql_context=CONTEXT)
    assert checker.gold_result("SELECT 1", sql_context=CONTEXT) is first
    checker.gold_result("SELECT 2", sql_context=CONTEXT)
    checker.gold_result("SELECT 3", sql_context=CONTEXT)
    assert checker.gold_result("SELECT 1", sql_context=CONTEXT) is not first


def test_checker_pickles_without_its_caches(checker: ExecutionChecker) -> None:
    checker.check(SELECT_GOLD, SELECT_GOLD, sql_context=CONTEXT)
    clone = pickle.loads(pickle.dumps(checker))
    assert clone.rule == checker.rule and len(clone.cache) == 0
    assert clone.check(SELECT_GOLD, SELECT_GOLD, sql_context=CONTEXT).match


def test_unknown_rule_is_rejected() -> None:
    with pytest.raises(ValueError, match="rule"):
        ExecutionChecker(rule="loose")


def test_spider_rule_on_a_spider_database(spider_subset_path: Path) -> None:
    db_path = str(spider_subset_path / "database" / "farm" / "farm.sqlite")
    gold = "SELECT Official_Name, Population FROM city"
    swapped = "SELECT Population, Official_Name FROM city"
    spider = ExecutionChecker(rule="spider").check(swapped, gold, db_path=db_path)
    seed = ExecutionChecker(rule="seed").check(swapped, gold, db_path=db_path)
    bird = ExecutionChecker(rule="bird").check(swapped, gold, db_path=db_path)
    assert spider.match and not seed.match and not bird.match
    assert seed.similarity == 1.0  # same column names: the seed Jaccard aligns them
