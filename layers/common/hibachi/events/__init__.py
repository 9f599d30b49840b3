"""The event log: every state change writes its event in the statement that makes it
(``repository``: the one fragment every such statement uses); the worker publishes them to
EventBridge in order per aggregate (``publisher``)."""
