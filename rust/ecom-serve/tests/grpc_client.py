"""Calls ecom serve from Python's official gRPC stack (grpcio), with stubs generated here from
proto/ by grpc_tools, as a user's system would. Run by tests/python_client.rs, which checks
what this writes. Usage: grpc_client.py ADDR PROTO_DIR INPUT.json OUTPUT.json"""
import json
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_tools import protoc

from importlib.resources import files

addr, proto_dir, input_path, output_path = sys.argv[1:5]
inp = json.load(open(input_path))

# Stubs from the same .proto files the Rust and Java code is generated from.
out_dir = tempfile.mkdtemp(prefix="ecom-py-stubs-")
well_known = str(files("grpc_tools") / "_proto")
for f in ("ecom/v1/events.proto", "ecom/v1/services.proto"):
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", f])
    if rc != 0:
        sys.exit(f"protoc failed on {f} ({rc})")
sys.path.insert(0, out_dir)
from ecom.v1 import events_pb2, services_pb2, services_pb2_grpc  # noqa: E402

out = {}
with grpc.insecure_channel(addr) as ch:
    grpc.channel_ready_future(ch).result(timeout=30)

    # Discovery: reflection lists our services; health says they serve.
    db = ProtoReflectionDescriptorDatabase(ch)
    out["services"] = sorted(db.get_services())
    health = health_pb2_grpc.HealthStub(ch)
    out["health"] = {
        s: health_pb2.HealthCheckResponse.ServingStatus.Name(
            health.Check(health_pb2.HealthCheckRequest(service=s), timeout=5).status)
        for s in ("ecom.v1.Guard", "ecom.v1.Score", "ecom.v1.Recommend")
    }

    score = services_pb2_grpc.ScoreStub(ch)
    info = score.Describe(services_pb2.DescribeRequest(), timeout=5)
    out["model_version"] = info.model_version
    out["feature_count"] = len(info.feature_names)
    probs, reasons = [], []
    for row in inp["rows"]:
        r = score.Predict(services_pb2.ScoreRequest(
            session_id="py", features=row, feature_schema_hash=info.feature_schema_hash,
            top_k_reasons=3), timeout=5)
        probs.append(r.purchase_probability)
        reasons.append([{"feature": x.feature, "value": x.value, "contribution": x.contribution}
                        for x in r.reasons])
    out["probabilities"] = probs
    out["reasons"] = reasons
    batch = score.PredictBatch(services_pb2.ScoreBatchRequest(requests=[
        services_pb2.ScoreRequest(features=row, feature_schema_hash=info.feature_schema_hash)
        for row in inp["rows"]]), timeout=5)
    out["batch_probabilities"] = [r.purchase_probability for r in batch.responses]

    # A bad request: the status code and a message that names the field.
    try:
        score.Predict(services_pb2.ScoreRequest(features=inp["rows"][0], feature_schema_hash="nope"),
                      timeout=5)
        out["bad_request"] = None
    except grpc.RpcError as e:
        out["bad_request"] = {"code": e.code().name, "details": e.details()}

    guard = services_pb2_grpc.GuardStub(ch)
    g = guard.Check(services_pb2.GuardRequest(
        event_id="py-1", event_time_ms=1_800_000_000_000, ip="203.0.113.77", user_id="u-py",
        session_id="s-py", kind=events_pb2.EVENT_KIND_PAGE_VIEW,
        user_agent="Mozilla/5.0 (X11; Linux x86_64)"), timeout=5)
    out["guard"] = {"verdict": events_pb2.Verdict.Name(g.verdict), "fallback": g.fallback}

    rec = services_pb2_grpc.RecommendStub(ch)
    sim = rec.Similar(services_pb2.SimilarRequest(tokens=inp["tokens"], k=5), timeout=5)
    out["similar"] = [{"product_id": p.product_id, "similarity": p.similarity} for p in sim.products]

json.dump(out, open(output_path, "w"), indent=1)
