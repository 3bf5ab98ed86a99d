"""Calls ozone-c daemons from Python's stock gRPC library (Debian
python3-grpcio), with message classes generated from our .proto files at
test time by protoc --python_out. Proves the method paths are standard."""
import importlib
import os
import subprocess
import sys

import grpc  # noqa: F401  (Debian python3-grpcio)


def generate(src_dir, out_dir, protos=("common.proto",)):
    """Generates *_pb2.py for protos into out_dir and imports them."""
    os.makedirs(out_dir, exist_ok=True)
    proto_dir = os.path.join(src_dir, "proto")
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out_dir] +
                   [os.path.join(proto_dir, p) for p in protos], check=True)
    sys.path.insert(0, out_dir)
    mods = {}
    for p in protos:
        name = p[:-len(".proto")] + "_pb2"
        mods[name] = importlib.import_module(name)
    return mods


def unary(channel, path, request, response_cls, timeout=5.0,
          raw_request=None):
    """One unary call; raw_request (bytes) bypasses serialisation."""
    if raw_request is not None:
        call = channel.unary_unary(path, request_serializer=lambda b: b,
                                   response_deserializer=response_cls.FromString)
        return call.with_call(raw_request, timeout=timeout)
    call = channel.unary_unary(path,
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_cls.FromString)
    return call.with_call(request, timeout=timeout)
