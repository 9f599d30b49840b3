"""CPU time of one job send, ``hibachi.sqs`` against a boto3 SQS client, in turns in one process:
``python -m bench.sendcpu [--sends 300]``.

Both send the same ``jobs.Job`` message to the same queue (the template's jobs queue) of moto's
server (in this process, on loopback); each send's CPU is the calling thread's ``thread_time``
(building, signing, the HTTP exchange and parsing; not the wait for moto, which runs in other
threads but shares the GIL, so both sides pay that alike). Alternating the two keeps the
comparison fair on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import bench  # noqa: F401 - sys.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sendcpu", description=__doc__)
    parser.add_argument("--sends", type=int, default=300)
    args = parser.parse_args(argv)
    from bench.env import AWS_ENV, load
    from bench.measure import Summary
    from bench.report import table

    os.environ.update(AWS_ENV)
    os.environ["MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"] = "false"  # purge often: see bench.env.Moto
    from hibachi import jobs, sqs

    from local.aws import Moto

    moto = Moto("sendcpu").start()  # in this process: see above
    try:
        boto = moto.client("sqs")
        queue = moto.resources.jobs_queue_url
        ours = sqs.Sqs("us-east-1", moto.endpoint_url)
        job = jobs.Job.new(jobs.EMOTION_STATS, "emotion_stats:c:1", {"conversation_id": "c"}, "bench")
        cpu: dict[str, list[float]] = {"hibachi.sqs": [], "boto3": []}
        before = load()
        for i in range(args.sends + 10):
            for name in ("hibachi.sqs", "boto3") if i % 2 else ("boto3", "hibachi.sqs"):
                start = time.thread_time()
                message = job.to_message()
                if name == "boto3":
                    boto.send_message(QueueUrl=queue, **message)
                else:
                    ours.send_message(queue, message)
                if i >= 10:  # the first ones build the connection (and botocore its caches)
                    cpu[name].append((time.thread_time() - start) * 1000)
            if i % 50 == 0:
                boto.purge_queue(QueueUrl=queue)
    finally:
        moto.stop()
    summary = {name: Summary.of(values) for name, values in cpu.items()}
    rows = [[name, str(s.n), f"{s.p50:.3f}", f"{s.p95:.3f}"] for name, s in summary.items()]
    print(f"python -m bench.sendcpu --sends {args.sends} (load average {before} / {load()})\n")
    print(table("client|sends|CPU ms per send p50|p95", rows))
    print(f"\nhibachi.sqs / boto3, p50: {summary['hibachi.sqs'].p50 / summary['boto3'].p50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
