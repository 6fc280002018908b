"""Forked workers (embedrobust.forked): each piece's result, in submission order, as an inline call gives it."""

import os

import pytest

from embedrobust.forked import ChildError, ForkPool, usable_cpus


def _square_and_pid(x):
    return x * x, os.getpid()


def _fail(x):
    raise ValueError(f"no square of {x}")


def test_results_come_back_in_submission_order_from_other_processes():
    with ForkPool(2) as pool:
        pieces = [pool.submit(_square_and_pid, x) for x in range(7)]  # more pieces than workers
        out = [p.result() for p in pieces]
    assert [v for v, _ in out] == [x * x for x in range(7)]
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_runs_every_piece_inline():
    with ForkPool(1) as pool:
        assert pool.submit(_square_and_pid, 3).result() == (9, os.getpid())


def test_a_piece_sees_the_parent_state_at_submission():
    state = {"x": 1}
    with ForkPool(2) as pool:
        first = pool.submit(lambda: state["x"])
        state["x"] = 2  # after the fork: the child keeps what it inherited
        second = pool.submit(lambda: state["x"])
        assert (first.result(), second.result()) == (1, 2)


def test_a_failing_piece_raises_in_the_parent_with_the_childs_traceback():
    with ForkPool(2) as pool:
        piece = pool.submit(_fail, 5, what="the square of 5")
        with pytest.raises(ChildError, match=r"(?s)the square of 5 failed.*ValueError: no square of 5"):
            piece.result()


def test_a_child_that_dies_without_a_result_is_an_error():
    with ForkPool(2) as pool:
        piece = pool.submit(os._exit, 3)
        with pytest.raises(ChildError, match="status 3 and no result"):
            piece.result()


def test_leaving_the_block_waits_for_every_child_and_removes_its_files():
    with ForkPool(2) as pool:
        pieces = [pool.submit(_square_and_pid, x) for x in range(3)]
        folder = pool._dir
    assert folder is not None and not os.path.exists(folder)
    assert [p.result()[0] for p in pieces] == [0, 1, 4]


def test_usable_cpus_counts_at_least_one():
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
