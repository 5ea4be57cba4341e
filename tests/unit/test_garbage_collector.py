"""A serving process freezes its start-up objects and raises the young-generation threshold."""

import asyncio
import gc

from server.app import YOUNG_GENERATION_THRESHOLD, tune_garbage_collector


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold():
    threshold = gc.get_threshold()
    try:
        asyncio.run(tune_garbage_collector(None))
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *threshold[1:])
        assert YOUNG_GENERATION_THRESHOLD > 10 * threshold[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
