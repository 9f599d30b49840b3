"""Post-event follow-ups: the ``schedule_followup`` and ``send_followup`` jobs, their SQL
(``repository``), the jobs as enqueued (``jobs``), the EventBridge Scheduler and SNS calls
(``service``) and their reconcilers."""
