-- One-row V2 infer request (an iris flower), the shape of most real traffic.
-- Prints one machine-readable line at the end: requests, seconds, p50/p99 in microseconds, errors.
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v2/models/iris/infer"
wrk.headers["Content-Type"] = "application/json"
-- BENCH_BODY: another model's one-row request (run.sh passes each model's, from make_model.py).
wrk.body = os.getenv("BENCH_BODY")
  or '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[6.1,2.8,4.7,1.2]}]}'

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("BENCH requests=%d seconds=%.3f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), errors))
end
