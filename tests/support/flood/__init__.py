"""Parts of the flood test (tests/test_flood.py): its reader processes (:mod:`.reader`,
run by :class:`.readers.Reader`), CPU and memory meters (:mod:`.meters`) and the judge of
a run (:mod:`.judge`)."""
