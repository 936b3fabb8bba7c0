"""The bridge thread yields to the training process (Linux): it runs at niceness 10."""
from __future__ import annotations

import os
import sys
import threading

import pytest

pytest.importorskip("pytestqt")

from gui.training.worker import yield_to_training  # noqa: E402


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread niceness is Linux's")
def test_the_calling_thread_gets_niceness_10_and_the_others_keep_theirs():
    seen = {}

    def bridge():
        yield_to_training()
        seen["bridge"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=bridge)
    t.start()
    t.join()
    assert seen["bridge"] == max(10, main_before)  # lowered, never raised
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
