"""Progress: plain lines off a terminal, the projected time, a warning past an hour, totals at the end."""

import io

from mmident_jax.progress import Progress


def lines(bars_out: io.StringIO) -> list[str]:
    return bars_out.getvalue().strip().splitlines()


def test_plain_lines_with_a_projection_throttled_to_one_per_interval():
    out, clock = io.StringIO(), iter([0, 10, 11, 12, 45, 50]).__next__
    bars = Progress({"train": 100}, stream=out, clock=clock, every=30)
    for _ in range(4):
        bars.advance("train", 20)
    bars.advance("train", 20, info="loss 0.1")
    assert lines(out) == [
        "train: projected 40 s to finish (20/100 in 10 s)",
        "train: 20/100 (20%) 10 s elapsed, 40 s left",
        "train: 80/100 (80%) 45 s elapsed, 11 s left",  # 11 s and 12 s: within 30 s, silent
        "train: 100/100 (100%) 50 s elapsed, done  loss 0.1",
    ]


def test_a_projection_over_an_hour_on_a_cpu_warns_in_one_line():
    out = io.StringIO()
    bars = Progress({"seed-steps": 300_001}, stream=out, clock=iter([0, 100]).__next__)
    bars.advance("seed-steps", 1000)
    assert lines(out)[:2] == [
        "seed-steps: projected 8 h 18 min to finish (1000/300001 in 1 min 40 s)",
        "warning: seed-steps is projected to take over an hour on this CPU; a quick preset takes minutes",
    ]


def test_resumed_work_moves_the_bar_not_the_speed_and_finish_shows_the_totals():
    out = io.StringIO()
    bars = Progress({"seed-steps": 8000, "runs probed": 4}, stream=out, clock=iter([0, 10, 20, 20]).__next__)
    bars.skip("seed-steps", 7200)  # resumed at step 7200
    bars.advance("seed-steps", 400)
    assert lines(out)[0] == "seed-steps: projected 10 s to finish (400/800 in 10 s)"
    bars.finish()  # the probing was reused: every bar still ends at its total
    assert lines(out)[-2:] == [
        "seed-steps: 8000/8000 (100%) 20 s elapsed, done",
        "runs probed: 4/4 (100%) 20 s elapsed, done",
    ]


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    bars = Progress({"train": 10}, enabled=False, stream=out)
    bars.advance("train", 10)
    bars.finish()
    assert out.getvalue() == ""
