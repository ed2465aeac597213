"""Time to parse and sort 10,000 mixed RSP image tags (images-tools.md 1.2-1.10).

A registry refresh parses every tag and sorts them into the priority listing
that menus, prepull lists and prune plans start from; upstream takes about
470 ms for this on the reference machine. The tag mix is deterministic and
shaped like a real RSP registry: weeklies and dailies with per-architecture
variants, releases with RSP builds, candidates, experimentals, declared
aliases (some with a SAL cycle) and unknown names. The parse cache is
cleared before every run, so each run parses every tag.

    python benchmarks/images.py [--tags 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from nublado.images.collection import RSPImageTagCollection, sort_tags
from nublado.images.tag import RSPImageTag, clear_parse_caches

__all__ = ["main", "mixed_tags"]

# Share of each kind in the mix (sums to 1).
_MIX = {
    "weekly": 0.30,
    "daily": 0.25,
    "release": 0.15,
    "candidate": 0.05,
    "experimental": 0.15,
    "alias": 0.03,
    "unknown": 0.07,
}
_ALIAS_BASES = ("recommended", "latest", "latest_weekly", "latest_daily", "latest_release")
_ARCH = ("", "", "-amd64", "-arm64")


def _one(kind: str, rng: random.Random) -> str:
    """One tag of a kind, drawn at random."""
    year = rng.randrange(2019, 2027)
    arch = rng.choice(_ARCH)
    match kind:
        case "weekly":
            cycle = rng.choice(("", "", "", f"_c00{rng.randrange(20, 50)}.00{rng.randrange(10)}"))
            return f"w_{year}_{rng.randrange(1, 53):02d}{cycle}{arch}"
        case "daily":
            return f"d_{year}_{rng.randrange(1, 13):02d}_{rng.randrange(1, 29):02d}{arch}"
        case "release":
            build = rng.choice(("", f"_rsp{rng.randrange(1, 3000)}"))
            return f"r{rng.randrange(19, 30)}_{rng.randrange(3)}_{rng.randrange(10)}{build}{arch}"
        case "candidate":
            return f"r{rng.randrange(19, 30)}_0_{rng.randrange(3)}_rc{rng.randrange(1, 12)}{arch}"
        case "experimental":
            inner = rng.choice(
                (
                    f"w_{year}_{rng.randrange(1, 53):02d}_{rng.choice(('jax', 'torch', 'dm42'))}",
                    f"d_{year}_{rng.randrange(1, 13):02d}_{rng.randrange(1, 29):02d}"
                    f"_tickets_DM{rng.randrange(10**5)}",
                    f"r{rng.randrange(19, 30)}_0_0_rc1_{rng.choice(('test', 'fix'))}",
                    f"sprint{rng.randrange(1000)}",
                )
            )
            return f"exp_{inner}{arch}"
        case "alias":
            cycle = rng.choice(("", f"_c00{rng.randrange(20, 50)}"))
            return f"{rng.choice(_ALIAS_BASES)}{cycle}{arch}"
        case _:
            return (
                f"{rng.choice(('sketch', 'test', 'Build', 'nightly'))}{rng.randrange(10**4)}{arch}"
            )


def mixed_tags(count: int, seed: int = 2077) -> tuple[list[str], set[str]]:
    """``count`` distinct tag names in the mix above (shuffled), and which are declared aliases."""
    rng = random.Random(seed)
    names: dict[str, None] = {}
    aliases: set[str] = set()
    for kind, share in _MIX.items():
        wanted = round(count * share)
        made = 0
        attempts = 0
        while made < wanted and attempts < wanted * 50:
            attempts += 1
            name = _one(kind, rng)
            if name not in names:
                names[name] = None
                made += 1
                if kind == "alias":
                    aliases.add(name)
    tags = list(names)[:count]
    rng.shuffle(tags)
    return tags, aliases & set(tags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    names, aliases = mixed_tags(args.tags)

    parse_times: list[float] = []
    sort_times: list[float] = []
    total_times: list[float] = []
    collection_times: list[float] = []
    for _ in range(args.runs):
        # Each run starts from a cold parse cache and a heap without the last run's tags.
        parsed = ordered = listing = []
        gc.collect()
        clear_parse_caches()
        start = time.perf_counter()
        parsed = [
            RSPImageTag.alias(name) if name in aliases else RSPImageTag.from_str(name)
            for name in names
        ]
        parsed_at = time.perf_counter()
        ordered = sort_tags(parsed)
        end = time.perf_counter()
        parse_times.append(parsed_at - start)
        sort_times.append(end - parsed_at)
        total_times.append(end - start)

        clear_parse_caches()
        start = time.perf_counter()
        collection = RSPImageTagCollection.from_names(names, aliases)
        listing = list(collection.all_tags(hide_arch_specific=False))
        collection_times.append(time.perf_counter() - start)
        assert listing == ordered

    counts: dict[str, int] = {}
    for tag in parsed:
        counts[tag.image_type.value] = counts.get(tag.image_type.value, 0) + 1
    print(f"tags: {len(names)} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    print(f"runs: {args.runs}; figures are best / median, in ms")
    for label, times in (
        ("parse", parse_times),
        ("sort", sort_times),
        ("parse + sort", total_times),
        ("collection from names + listing", collection_times),
    ):
        best, median = min(times) * 1000, statistics.median(times) * 1000
        print(f"{label:>32}: {best:7.1f} / {median:7.1f}")


if __name__ == "__main__":
    main()
