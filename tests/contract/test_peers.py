"""Every AWS output has a real peer in the contract test (tests/contract/peers.py), found from its config."""

from __future__ import annotations

from collector.api import Output
from collector.registry import load_registry
from tests.contract.peers import AWS_PEERS

# An output whose config takes an AWS endpoint or region talks to AWS: its README example runs against moto.
AWS_OPTIONS = {"endpoint_url", "region"}


def test_every_aws_output_has_a_peer_setup() -> None:
    outputs = {
        type_name: cls
        for (section, type_name), cls in load_registry().plugins.items()
        if section == "outputs" and issubclass(cls, Output)
    }
    aws = {name for name, cls in outputs.items() if AWS_OPTIONS & set(cls.Config.model_fields)}
    missing = sorted(aws - set(AWS_PEERS))
    assert not missing, (
        f"AWS outputs without a contract peer: {missing}; add to AWS_PEERS in tests/contract/peers.py a function "
        "that creates what the README example names in moto (a bucket, a stream), or `_nothing`"
    )
    stale = sorted(set(AWS_PEERS) - aws)
    assert not stale, f"tests/contract/peers.py sets up peers for outputs that are no AWS output: {stale}"
