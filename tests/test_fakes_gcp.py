"""The recording mock's GCP answers look like GCP's: every type the GCP stacks register gets an id in its
own format with the stack's project, and a data source the fakes do not know fails loudly."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from inferstack.planning import fakes
from inferstack.planning.fakes.gcp import FAKE_PROJECT_NUMBER
from inferstack.planning.plan import Plan, plan_stack
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]

#: The id format of every GCP type the stacks create (what the provider stores as the resource's id).
ID_FORMATS = {
    "gcp:compute/network:Network": r"projects/{p}/global/networks/[a-z0-9-]+",
    "gcp:compute/subnetwork:Subnetwork": r"projects/{p}/regions/{r}/subnetworks/[a-z0-9-]+",
    "gcp:compute/router:Router": r"projects/{p}/regions/{r}/routers/[a-z0-9-]+",
    "gcp:compute/routerNat:RouterNat": r"{p}/{r}/[a-z0-9-]+/[a-z0-9-]+",
    "gcp:compute/firewall:Firewall": r"projects/{p}/global/firewalls/[a-z0-9-]+",
    "gcp:container/cluster:Cluster": r"projects/{p}/locations/{r}(-[a-z])?/clusters/[a-z0-9-]+",
    "gcp:container/nodePool:NodePool": r"projects/{p}/locations/{r}(-[a-z])?/clusters/[a-z0-9-]+/nodePools/[a-z0-9-]+",
    "gcp:kms/keyRing:KeyRing": r"projects/{p}/locations/{r}/keyRings/[a-z0-9-]+",
    "gcp:kms/cryptoKey:CryptoKey": r"projects/{p}/locations/{r}/keyRings/[a-z0-9-]+/cryptoKeys/[a-z0-9-]+",
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": r"projects/{p}/.+/cryptoKeys/[a-z0-9-]+/roles/\S+/\S+",
    "gcp:serviceaccount/account:Account": r"projects/{p}/serviceAccounts/[a-z0-9-]+@{p}\.iam\.gserviceaccount\.com",
    "gcp:projects/iAMMember:IAMMember": r"{p}/roles/\S+/serviceAccount:\S+",
    "gcp:projects/service:Service": r"{p}/[a-z]+\.googleapis\.com",
    "gcp:storage/bucket:Bucket": r"[a-z0-9][a-z0-9._-]+",
    "gcp:storage/bucketIAMMember:BucketIAMMember": r"b/[a-z0-9._-]+/roles/storage\.objectViewer/principal://\S+",
    "gcp:dns/recordSet:RecordSet": r"projects/{p}/managedZones/[a-z0-9-]+/rrsets/\S+/(A|CNAME)",
    "gcp:dns/managedZone:ManagedZone": r"projects/{p}/managedZones/[a-z][a-z0-9-]+",
    "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember": r"[a-z0-9-]+/roles/dns\.admin/principal://\S+",
}


@cache
def planned(stack: str) -> Plan:
    return plan_stack(load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml"), stack)


@pytest.mark.parametrize("stack", ["dev-gcp", "prod-gcp"])
def test_every_gcp_resource_gets_an_id_in_its_own_format(stack: str) -> None:
    plan = planned(stack)
    assert plan.config.gcp is not None
    project, region = plan.config.gcp.project, plan.config.gcp.region
    gcp_resources = [r for r in plan.recording.resources if r.type.startswith("gcp:")]
    assert {r.type for r in gcp_resources} <= set(ID_FORMATS), "a GCP type without a realistic fake"
    for r in gcp_resources:
        pattern = ID_FORMATS[r.type].format(p=re.escape(project), r=re.escape(region))
        assert r.id is not None and re.fullmatch(pattern, r.id), (r.type, r.id)


def test_cluster_outputs_carry_endpoints_and_a_ca() -> None:
    cluster = planned("prod-gcp").recording.one("gcp:container/cluster:Cluster").outputs
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", cluster["endpoint"])
    assert cluster["privateClusterConfig"]["privateEndpoint"].startswith("172.16.40.")
    dns = cluster["controlPlaneEndpointsConfig"]["dnsEndpointConfig"]["endpoint"]
    assert dns.endswith(f"-{FAKE_PROJECT_NUMBER}.europe-west4.gke.goog")
    assert cluster["masterAuth"]["clusterCaCertificate"]


def test_an_internal_gke_balancer_gets_a_private_address() -> None:
    assert planned("prod-gcp").recording.exports["load_balancer_ip"] == fakes.FAKE_INTERNAL_LOAD_BALANCER_IP
    assert planned("dev-gcp").recording.exports["load_balancer_ip"] == fakes.FAKE_LOAD_BALANCER_IP


def test_an_unknown_gcp_data_source_fails_loudly() -> None:
    with pytest.raises(NotImplementedError, match="getNetwork"):
        fakes.invoke_result("gcp:compute/getNetwork:getNetwork", {"name": "default"})
    project = fakes.invoke_result("gcp:organizations/getProject:getProject", {"projectId": "acme-x"})
    assert (project["projectId"], project["number"]) == ("acme-x", FAKE_PROJECT_NUMBER)
