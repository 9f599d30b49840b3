"""What the tests share: builders, in-process callers of the handlers and the stacks they run on.
Test modules import from here (and their fixtures from conftest.py), never from another test module."""
