"""Time the image layer's hot paths on 10,000 mixed RSP image tags (images-tools.md 1.2-1.10).

A registry refresh parses every tag and sorts them into the priority listing
that menus, prepull lists and prune plans start from. Issue 8 item 7 asks for
parse + sort in 50 ms or less; upstream takes about 470 ms on the reference
machine. The tag mix is deterministic and shaped like a real RSP registry:
weeklies and dailies with per-architecture variants, releases with RSP
builds, candidates, experimentals, declared aliases (some with a SAL cycle)
and unknown names.

Each figure is a named measurement that prints one line,
``name: best X ms, median Y ms (N runs)``. How a run is measured:

* one warm-up run of each measurement first, not counted (it settles the
  allocator's arenas and the CPU caches, not our caches);
* before every run, untimed: the last run's results are dropped, the garbage
  collector runs and the parse caches are cleared, so every run parses every
  tag from cold;
* the garbage collector stays enabled while timing, as in the service: its
  young-generation passes over the new tags are part of the cost;
* runs of the figures interleaved, so a slow spell weighs on all alike;
* best and median both: this machine's speed varies by up to 2x between
  runs (other work shares its two cores), the best is the figure comparable
  across commits and the median says how noisy the run was.

    python benchmarks/images.py [--tags 10000] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from nublado.config import ImageFilterPolicy, ImagesConfig
from nublado.images.collection import RSPImageTagCollection, sort_tags
from nublado.images.image import RSPImage, RSPImageCollection
from nublado.images.nodes import NodeData
from nublado.images.source import StaticImageSource, prepulled_menu_images
from nublado.images.tag import RSPImageTag, clear_parse_caches
from nublado.services.images import ImageSnapshot, prepull_plan

__all__ = ["Measurement", "main", "measurements", "mixed_tags", "parse_all", "run"]

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


def parse_all(names: list[str], aliases: set[str]) -> list[RSPImageTag]:
    """Parse names as a registry refresh does: declared aliases as aliases."""
    return [
        RSPImageTag.alias(name) if name in aliases else RSPImageTag.from_str(name) for name in names
    ]


@dataclass(frozen=True)
class Measurement:
    """One printed figure: its name, and a function that times one run of it.

    The function does its own untimed preparation and returns the seconds of
    the timed part only, so figures that need setup (a parsed registry, a
    node list) stay honest about what they measure.
    """

    name: str
    once: Callable[[], float]


def _cold() -> None:
    """What every run starts from: no garbage from the last run, no parsed tag cached."""
    gc.collect()
    clear_parse_caches()


def static_config(names: list[str], aliases: set[str]) -> ImagesConfig:
    """A static source of the tags: each its own digest, aliases sharing a weekly's."""
    weeklies = [name for name in names if name.startswith("w_")]
    tags = {name: f"sha256:{index:064x}" for index, name in enumerate(names)}
    for index, alias in enumerate(sorted(aliases)):
        tags[alias] = tags[weeklies[index % len(weeklies)]]
    source = {"type": "static", "registry": "example.com", "repository": "rsp", "tags": tags}
    return ImagesConfig.model_validate({"source": source})


def plan_snapshot(nodes: int = 100, images: int = 20, seed: int = 2077) -> ImageSnapshot:
    """A refresh's result: ``images`` weeklies to prepull, each node holding a random half."""
    rng = random.Random(seed)
    prepull = [
        RSPImage(
            RSPImageTag.from_str(f"w_2077_{week:02d}"),
            registry="example.com",
            repository="rsp",
            digest=f"sha256:{week:064x}",
        )
        for week in range(1, images + 1)
    ]
    digests = [image.digest for image in prepull]
    node_data = tuple(
        NodeData(name=f"node{i:03d}", cached=(), eligible=i % 10 != 0, comment=None)
        for i in range(nodes)
    )
    held = {node.name: set(rng.sample(digests, images // 2)) for node in node_data}
    return ImageSnapshot(to_prepull=RSPImageCollection(prepull), nodes=node_data, node_digests=held)


def measurements(names: list[str], aliases: set[str]) -> list[Measurement]:
    """The figures of one benchmark run, in print order (issue 8 item 7)."""
    config = static_config(names, aliases)
    snapshot = plan_snapshot()

    def parse() -> list[RSPImageTag]:
        return parse_all(names, aliases)

    def parse_and_sort() -> float:
        _cold()
        start = time.perf_counter()
        sort_tags(parse())
        return time.perf_counter() - start

    def parse_only() -> float:
        _cold()
        start = time.perf_counter()
        parse()
        return time.perf_counter() - start

    def sort_only() -> float:
        _cold()
        parsed = parse()
        random.Random(len(parsed)).shuffle(parsed)  # not the order the last sort left
        gc.collect()
        start = time.perf_counter()
        sort_tags(parsed)
        return time.perf_counter() - start

    def collection() -> float:
        _cold()
        start = time.perf_counter()
        tags = RSPImageTagCollection.from_names(names, aliases)
        list(tags.all_tags(hide_arch_specific=False))
        return time.perf_counter() - start

    def menu() -> float:
        """A refresh of a static source of the tags, then the dropdown and the radio menu."""
        _cold()
        source = StaticImageSource(config)
        start = time.perf_counter()
        to_prepull = asyncio.run(source.update_images({}))
        source.menu_images(ImageFilterPolicy())
        prepulled_menu_images(to_prepull, config.recommended_tag, frozenset())
        return time.perf_counter() - start

    def plan() -> float:
        start = time.perf_counter()
        prepull_plan(snapshot)
        return time.perf_counter() - start

    count = f"{len(names):,}"
    return [
        Measurement(f"parse + sort {count} tags", parse_and_sort),
        Measurement(f"parse {count} tags", parse_only),
        Measurement(f"sort {count} parsed tags", sort_only),
        Measurement(f"collection from {count} names + listing", collection),
        Measurement(f"menu and dropdown from {count} tags (refresh included)", menu),
        Measurement("prepull plan, 100 nodes x 20 images", plan),
    ]


def run(figures: list[Measurement], runs: int) -> list[str]:
    """Time ``runs`` runs of each figure after one warm-up each and return their lines.

    Runs are interleaved (one of each figure, then the next round), so that a
    slow spell of the machine weighs on every figure alike rather than on
    whichever was being timed.
    """
    for figure in figures:
        figure.once()
    times: list[list[float]] = [[] for _ in figures]
    for _ in range(runs):
        for figure, figure_times in zip(figures, times, strict=True):
            figure_times.append(figure.once() * 1000)
    return [
        f"{figure.name}: best {min(values):.1f} ms,"
        f" median {statistics.median(values):.1f} ms ({runs} runs)"
        for figure, values in zip(figures, times, strict=True)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    names, aliases = mixed_tags(args.tags)

    _cold()
    tags = RSPImageTagCollection.from_names(names, aliases)
    listing = list(tags.all_tags(hide_arch_specific=False))
    if listing != sort_tags(parse_all(names, aliases)):
        raise SystemExit("the collection's listing is not sort_tags' order")
    counts: dict[str, int] = {}
    for tag in listing:
        counts[tag.image_type.value] = counts.get(tag.image_type.value, 0) + 1
    print(f"tags: {len(names)} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    for line in run(measurements(names, aliases), args.runs):
        print(line)


if __name__ == "__main__":
    main()
