# The cold-start child: run as ``python -c <this source> EVENT_JSON OUT_JSON`` with the function's
# folder as the working directory (sys.path[0], like /var/task) and the layer on PYTHONPATH (like
# /opt/python). What the Lambda runtime has done before it imports the handler (read the event,
# build the context) happens before the clock starts.
import json
import sys
import sysconfig
import time

event_path, out_path = sys.argv[1], sys.argv[2]
with open(event_path, encoding="utf-8") as f:
    event = json.load(f)


class Context:
    function_name = "cold-start"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000001"
    log_group_name = "/aws/lambda/cold-start"
    log_stream_name = "cold-start"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


context = Context()
site_dirs = tuple({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
baseline = set(sys.modules)

t0 = time.perf_counter()
import app  # type: ignore[import-not-found]  # noqa: E402

t1 = time.perf_counter()
after_import = [m for m in sys.modules if m not in baseline]
response = app.lambda_handler(event, context)
t2 = time.perf_counter()
after_first = [m for m in sys.modules if m not in baseline]


def third_party(names: list[str]) -> list[str]:
    found = []
    for name in names:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if path.startswith(site_dirs):
            found.append(name)
    return found


if isinstance(response, dict) and "statusCode" in response:
    outcome = response["statusCode"]
elif isinstance(response, dict) and "batchItemFailures" in response:
    outcome = "ok" if not response["batchItemFailures"] else f"{len(response['batchItemFailures'])} failed"
else:
    outcome = repr(response)[:100]
sys.stdout.flush()
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(
        {
            "import_ms": (t1 - t0) * 1000,
            "first_ms": (t2 - t1) * 1000,
            "total_ms": (t2 - t0) * 1000,
            "responded_at": t2,  # perf_counter (CLOCK_MONOTONIC, shared with the parent): the end without the exit
            "outcome": outcome,
            "third_party_import": third_party(after_import),
            "third_party_first": third_party(after_first),
            "all_import": after_import,
            "all_first": after_first,
        },
        f,
    )
