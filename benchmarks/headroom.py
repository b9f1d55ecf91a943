"""What the gradient search leaves on the table: a coordinate search at fixed predicted cost.

At ``--fraction`` x dense GMACs (FLOPs cost, similarity merging): the default gradient search, then a
first-improvement coordinate search started from its schedule. A schedule is read as the tokens
removed at each decision (every block's prune and merge); a move takes 4 removed tokens from one
decision and gives them to another, whose removal is then adjusted by the integer k that puts the
predicted cost back into [0.99 x budget, the learned schedule's cost]. Moves are scored on
``--score-images`` search images (feature cosine to the dense model, deploy mode) and kept when they
improve the score, in random order until ``--minutes`` run out or a full pass finds nothing. The
best schedule's held-out fidelity is reported beside the learned schedule's, with a paired
bootstrap 95% interval.

    python benchmarks/headroom.py [--fraction 0.6] [--minutes 30] [--score-images 128]

Writes results/benchmarks/headroom.json after every accepted move.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.cost import Budget, FlopsCost  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.quality import collect, feature_cosines  # noqa: E402
from hwsearch.schedule import Counts, as_lists, min_merge_kept, removed_tokens, walk  # noqa: E402
from hwsearch.search.gradient import SearchConfig, gradient_search  # noqa: E402

MOVE = 4  # tokens moved between two decisions per step


def to_drops(counts: Counts, start: int, num_tokens: int) -> list[int]:
    """Tokens removed at each decision from ``start`` on: prune, merge, prune, merge, ..."""
    return [d for pair in removed_tokens(counts, num_tokens)[start:] for d in pair]


def from_drops(drops: list[int], num_tokens: int, depth: int, num_prefix: int, start: int) -> Counts | None:
    """The schedule that removes ``drops``; None when one is negative or a block cannot remove that many."""
    if min(drops) < 0:
        return None
    counts = walk(num_tokens, depth, start,
                  lambda i, entering: (entering - drops[2 * (i - start)],
                                       entering - drops[2 * (i - start)] - drops[2 * (i - start) + 1]), num_prefix + 1)
    valid = to_drops(counts, start, num_tokens) == drops and all(
        m >= min_merge_kept(p, num_prefix, "similarity") for p, m in counts[start:])
    return counts if valid else None


def moves(drops: list[int], cost: FlopsCost, band: tuple[float, float], shape: tuple[int, int, int, int]
          ) -> list[Counts]:
    """Every schedule one move away inside the cost ``band``: decision a removes 4 tokens fewer (or more)
    and decision b the fewest more (or fewer) tokens that bring the predicted cost back into the band."""
    out = []
    for a in range(len(drops)):
        for b in range(len(drops)):
            for sign in (1, -1) if a != b else ():
                for k in range(0, 4 * MOVE + 1):
                    trial = list(drops)
                    trial[a] -= sign * MOVE
                    trial[b] += sign * k
                    counts = from_drops(trial, *shape)
                    if counts is not None and band[0] <= cost.cost(counts) <= band[1]:
                        out.append(counts)
                        break
    return out


def main() -> int:
    parser = bench.parser(__doc__, num_images=1000)
    parser.add_argument("--fraction", type=float, default=0.6, help="GMACs budget as a fraction of dense")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--score-images", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    b = bench.setup(args)
    vit, depth, prefix = b.vit, b.model.depth, b.model.num_prefix
    config = SearchConfig(merging="similarity")
    cost = FlopsCost.from_model(vit, "similarity")
    goal = args.fraction * cost.dense_cost(depth)
    learned = gradient_search(CompressedViT(vit, merging="similarity"), [Budget(cost, goal, name="gmacs")],
                              b.search_set, config, progress=False)
    scoring = b.search_set.take(slice(0, args.score_images))
    score_ref = collect(b.model, scoring)

    def score(counts: Counts) -> float:
        return float(feature_cosines(score_ref, collect(apply_schedule(vit, counts, "similarity"), scoring)).mean())

    shape = (b.model.num_tokens, depth, prefix, config.compress_from)
    band = (0.99 * goal, max(goal, learned.predicted))  # never more predicted cost than the learned schedule
    best, best_score = learned.counts, score(learned.counts)
    print(f"learned: {as_lists(best)}  search-image score {best_score:.4f}", flush=True)
    started, rng, evaluated, accepted = time.perf_counter(), random.Random(args.seed), 0, []
    improved = True
    while improved and time.perf_counter() - started < 60 * args.minutes:
        improved = False
        candidates = moves(to_drops(best, config.compress_from, shape[0]), cost, band, shape)
        rng.shuffle(candidates)
        for counts in candidates:
            if time.perf_counter() - started >= 60 * args.minutes:
                break
            value = score(counts)
            evaluated += 1
            if value > best_score:
                best, best_score, improved = counts, value, True
                accepted.append({"after_s": round(time.perf_counter() - started), "score": value})
                print(f"  {evaluated} scored, {time.perf_counter() - started:.0f} s: {value:.4f} "
                      f"{as_lists(best)}", flush=True)
                break
    held = {name: b.held_out_cosines(counts)
            for name, counts in (("learned", learned.counts), ("coordinate", best))}
    diff = bench.paired_interval(held["coordinate"], held["learned"])
    result = {"fraction": args.fraction, "budget_gmacs": goal, "minutes": (time.perf_counter() - started) / 60,
              "scored": evaluated, "accepted": accepted, "learned": as_lists(learned.counts),
              "coordinate": as_lists(best), "gmacs": {"learned": learned.predicted, "coordinate": cost.cost(best)},
              "held_out": {k: float(v.mean()) for k, v in held.items()}, "coordinate_minus_learned": diff,
              "per_photo": bench.paired_by_photo(held["coordinate"], held["learned"], b.held_out.groups),
              "search_seconds": learned.seconds, "provenance": provenance()}
    write_json(Path(args.out) / "benchmarks" / "headroom.json", result)
    print(f"held-out fidelity: learned {result['held_out']['learned']:.4f}, coordinate search "
          f"{result['held_out']['coordinate']:.4f} after {evaluated} scored moves in {result['minutes']:.1f} min; "
          f"coordinate - learned {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
