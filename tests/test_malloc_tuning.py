"""glibc's mmap threshold, pinned by `nublado serve` and `nublado daemon` (`pin_mmap_threshold`)."""

from __future__ import annotations

import gc
import platform
from unittest import mock

import pytest

from nublado import heap, serve


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_the_mmap_threshold_is_pinned_under_glibc() -> None:
    assert serve.pin_mmap_threshold() is True


def test_tune_gc_pins_the_mmap_threshold() -> None:
    thresholds = gc.get_threshold()
    try:
        with mock.patch.object(serve, "pin_mmap_threshold") as pin:
            serve.tune_gc()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    pin.assert_called_once_with()


def test_without_mallopt_nothing_is_pinned() -> None:
    with mock.patch.object(heap.ctypes, "CDLL", side_effect=OSError("no libc")):
        assert serve.pin_mmap_threshold() is False


def test_a_threshold_the_operator_set_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    with mock.patch.object(heap.ctypes, "CDLL") as cdll:
        assert serve.pin_mmap_threshold() is False
    cdll.assert_not_called()


def test_nothing_is_pinned_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap.sys, "platform", "win32")
    with mock.patch.object(heap.ctypes, "CDLL") as cdll:
        assert serve.pin_mmap_threshold() is False
    cdll.assert_not_called()


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_the_heap_is_trimmed_under_glibc() -> None:
    assert heap.trim_heap() is True


def test_without_malloc_trim_nothing_is_trimmed() -> None:
    with mock.patch.object(heap.ctypes, "CDLL", side_effect=OSError("no libc")):
        assert heap.trim_heap() is False
