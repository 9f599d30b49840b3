"""followup_worker: consumes the jobs queue (SQS, partial batch failures) and, on its schedule,
runs the reconciler that re-enqueues whatever a failed send left behind.

    SQS event                  -> hibachi.worker.process_batch with the job handlers below
    {"task": "reconcile"}      -> hibachi.worker.reconcile with the reconcilers below
"""

from __future__ import annotations

import gc

gc.disable()  # until the init is done (hibachi.coldstart): its objects are long-lived, not garbage

import warnings
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hibachi import jobs, worker
from hibachi.coldstart import init_done
from hibachi.conversations import service as conversations
from hibachi.events import publisher as events
from hibachi.followups import service as followups
from hibachi.observability import logger, metrics
from hibachi.settings import require_on_aws
from hibachi.verifications import delivery as verifications

# a mis-wired deploy fails its cold start, with one log line
require_on_aws(
    "db_host", "jobs_queue_url", "followup_topic_arn", "scheduler_role_arn", "scheduler_target_arn", "event_bus_name"
)

# Job metrics go out per job type through EphemeralMetrics (worker.py), so the shared Metrics object
# is often empty at flush time; its warning about that would only add noise to every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish")

HANDLERS: dict[str, worker.BatchHandler] = {
    jobs.EMOTION_STATS: conversations.handle_emotion_jobs,
    # a booking change enqueues schedule_followup, and a sent follow-up is an event: each job
    # publishes its booking's events after its own work (hibachi.events.publisher)
    jobs.SCHEDULE_FOLLOWUP: events.publishing_after(followups.handle_schedule_jobs),
    jobs.SEND_FOLLOWUP: events.publishing_after(followups.handle_send_jobs),
    jobs.SEND_REMINDER: events.publishing_after(followups.handle_reminder_jobs),
    jobs.PUBLISH_EVENTS: events.handle_publish_jobs,
    jobs.SEND_VERIFICATION: verifications.handle_delivery_jobs,
}

# in this order within a run's budget: the bus first (its run is capped by itself), then the sends due
# to customers, then the rest
RECONCILERS: dict[str, worker.Reconciler] = {
    jobs.PUBLISH_EVENTS: events.reconcile_publish,
    jobs.SEND_REMINDER: followups.reconcile_reminder_jobs,
    jobs.SEND_FOLLOWUP: followups.reconcile_send_jobs,
    jobs.SCHEDULE_FOLLOWUP: followups.reconcile_schedule_jobs,
    jobs.EMOTION_STATS: conversations.reconcile_emotion_jobs,
}


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("task") == "reconcile":
        return worker.reconcile(RECONCILERS)
    return worker.process_batch(event, context, HANDLERS)


init_done()  # the last statement of the init (hibachi.coldstart)
