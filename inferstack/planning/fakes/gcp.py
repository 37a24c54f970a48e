"""Realistic, deterministic GCP outputs and data-source answers for the recording mock.

Every `gcp:` resource gets what the provider would compute: its id in the resource's own path format
(projects/<project>/global/networks/<name>, projects/<project>/locations/<region>/clusters/<name>, ...),
a selfLink for compute resources, a service account's email and member, a GKE cluster's endpoints and CA,
a bucket's url. The project and region are the stack's provider settings, seen when it registers; values
derive from type and name only, so plans are byte-identical between runs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

DEFAULT_PROJECT = "acme-inference"
DEFAULT_REGION = "us-central1"
#: A project number in GCP's 12-digit format (service agents and Workload Identity principals use it).
FAKE_PROJECT_NUMBER = "614120385432"

_COMPUTE = "https://www.googleapis.com/compute/v1"

#: IAM member grants, by the input naming what the role is granted on.
_IAM_MEMBER_TARGET = {
    "gcp:projects/iAMMember:IAMMember": "project",
    "gcp:storage/bucketIAMMember:BucketIAMMember": "bucket",
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": "cryptoKeyId",
    "gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember": "managedZone",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _physical_name(name: str, type_token: str) -> str:
    """The auto-name Pulumi gives a resource without an explicit name: logical name + 7 random chars."""
    return f"{name}-{_digest('name', type_token, name)[:7]}"


def _fake_ca_base64(seed: str) -> str:
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 6).decode()
    pem = "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


def _ip(seed: str, prefix: str) -> str:
    return f"{prefix}.{int(seed[:2], 16) % 250 + 1}"


def service_agent(project_number: str, service: str) -> str:
    """A Google-managed service agent's email, e.g. GKE's (container-engine-robot)."""
    return f"service-{project_number}@{service}.iam.gserviceaccount.com"


def outputs_for(
    type_token: str, name: str, inputs: dict[str, Any], project: str | None, region: str | None
) -> dict[str, Any]:
    """The inputs plus what GCP computes, for one `gcp:` resource."""
    project = str(inputs.get("project") or project or DEFAULT_PROJECT)
    region = str(inputs.get("region") or region or DEFAULT_REGION)
    out = copy.deepcopy(inputs)
    out.setdefault("project", project)
    seed = _digest(type_token, name)
    physical = str(inputs.get("name") or _physical_name(name, type_token))
    if type_token.startswith(("gcp:compute/", "gcp:container/", "gcp:storage/bucket:", "gcp:kms/")):
        out.setdefault("name", physical)
    location = str(inputs.get("location") or region)

    if type_token == "gcp:compute/network:Network":
        out["id"] = f"projects/{project}/global/networks/{physical}"
        out["selfLink"] = f"{_COMPUTE}/{out['id']}"
        out["numericId"] = str(int(seed[:15], 16))
    elif type_token == "gcp:compute/subnetwork:Subnetwork":
        out["region"] = region
        out["id"] = f"projects/{project}/regions/{region}/subnetworks/{physical}"
        out["selfLink"] = f"{_COMPUTE}/{out['id']}"
        cidr = str(inputs.get("ipCidrRange", "10.0.0.0/20"))
        out["gatewayAddress"] = cidr.rsplit(".", 1)[0] + ".1"
    elif type_token in {"gcp:compute/router:Router", "gcp:compute/address:Address"}:
        collection = "routers" if type_token.endswith("Router") else "addresses"
        out["region"] = region
        out["id"] = f"projects/{project}/regions/{region}/{collection}/{physical}"
        out["selfLink"] = f"{_COMPUTE}/{out['id']}"
        if collection == "addresses":
            internal = inputs.get("addressType") == "INTERNAL"
            out.setdefault("address", _ip(seed, "10.0.0" if internal else "34.118.240"))
    elif type_token == "gcp:compute/routerNat:RouterNat":
        out["region"] = region
        out["id"] = f"{project}/{region}/{inputs.get('router', 'router')}/{physical}"
    elif type_token == "gcp:compute/firewall:Firewall":
        out["id"] = f"projects/{project}/global/firewalls/{physical}"
        out["selfLink"] = f"{_COMPUTE}/{out['id']}"
    elif type_token == "gcp:container/cluster:Cluster":
        out["location"] = location
        out["id"] = f"projects/{project}/locations/{location}/clusters/{physical}"
        out["selfLink"] = f"https://container.googleapis.com/v1/{out['id']}"
        out["endpoint"] = _ip(seed, "34.29.120")
        out["masterAuth"] = {
            **(inputs.get("masterAuth") or {}),
            "clusterCaCertificate": _fake_ca_base64(seed),
        }
        private = dict(inputs.get("privateClusterConfig") or {})
        if private:
            master_cidr = str(private.get("masterIpv4CidrBlock") or "172.16.0.0/28")
            private["privateEndpoint"] = master_cidr.rsplit(".", 1)[0] + ".2"
            private["publicEndpoint"] = out["endpoint"]
            private["peeringName"] = f"gke-n{seed[:17]}-peer"
            out["privateClusterConfig"] = private
        endpoints = dict(inputs.get("controlPlaneEndpointsConfig") or {})
        dns = dict(endpoints.get("dnsEndpointConfig") or {})
        dns["endpoint"] = f"gke-{seed[:32]}-{FAKE_PROJECT_NUMBER}.{location}.gke.goog"
        endpoints["dnsEndpointConfig"] = dns
        out["controlPlaneEndpointsConfig"] = endpoints
        out["masterVersion"] = str(inputs.get("minMasterVersion") or "1.34") + ".1-gke.1000000"
        out["labelFingerprint"] = seed[:16]
        out["operation"] = None
    elif type_token == "gcp:container/nodePool:NodePool":
        cluster = str(inputs.get("cluster", "cluster"))
        out["location"] = location
        out["id"] = f"projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{physical}"
        group = f"gke-{cluster[:15]}-{physical[:15]}-{seed[:8]}-grp"
        out["instanceGroupUrls"] = [
            f"{_COMPUTE}/projects/{project}/zones/{location}-a/instanceGroupManagers/{group}"
        ]
        out["managedInstanceGroupUrls"] = [
            f"{_COMPUTE}/projects/{project}/zones/{location}-a/instanceGroups/{group}"
        ]
        out["version"] = str(inputs.get("version") or "1.34.1-gke.1000000")
    elif type_token == "gcp:serviceaccount/account:Account":
        account_id = str(inputs.get("accountId") or physical[:30])
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        out["email"] = email
        out["member"] = f"serviceAccount:{email}"
        out["name"] = f"projects/{project}/serviceAccounts/{email}"
        out["id"] = out["name"]
        out["uniqueId"] = str(int(seed[:20], 16))[:21]
    elif type_token == "gcp:iam/workloadIdentityPool:WorkloadIdentityPool":
        # terraform-provider-google: name = projects/{project_number}/locations/global/workloadIdentityPools/
        # {workload_identity_pool_id}; the id names the project by its id.
        pool = str(inputs.get("workloadIdentityPoolId") or physical)
        out["name"] = f"projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/{pool}"
        out["id"] = f"projects/{project}/locations/global/workloadIdentityPools/{pool}"
        out["state"] = "ACTIVE"
    elif type_token == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider":
        pool = str(inputs.get("workloadIdentityPoolId") or "pool")
        provider = str(inputs.get("workloadIdentityPoolProviderId") or physical)
        path = f"locations/global/workloadIdentityPools/{pool}/providers/{provider}"
        out["name"] = f"projects/{FAKE_PROJECT_NUMBER}/{path}"
        out["id"] = f"projects/{project}/{path}"
        out["state"] = "ACTIVE"
    elif type_token == "gcp:kms/keyRing:KeyRing":
        out["id"] = f"projects/{project}/locations/{location}/keyRings/{physical}"
    elif type_token == "gcp:kms/cryptoKey:CryptoKey":
        out["id"] = (
            f"{inputs.get('keyRing', f'projects/{project}/locations/{location}/keyRings/ring')}/cryptoKeys/{physical}"
        )
        out["primaries"] = [{"name": f"{out['id']}/cryptoKeyVersions/1", "state": "ENABLED"}]
    elif type_token == "gcp:storage/bucket:Bucket":
        bucket = physical
        out["name"] = bucket
        out["id"] = bucket
        out["url"] = f"gs://{bucket}"
        out["selfLink"] = f"https://www.googleapis.com/storage/v1/b/{bucket}"
        out["location"] = str(inputs.get("location") or region).upper()
        out["projectNumber"] = int(FAKE_PROJECT_NUMBER)
    elif type_token == "gcp:dns/managedZone:ManagedZone":
        # The provider's id is projects/<project>/managedZones/<name>; Cloud DNS adds a numeric id and, for a
        # private zone, the name servers it answers from (the VPC's resolver, no public delegation).
        out["name"] = physical
        out["id"] = f"projects/{project}/managedZones/{physical}"
        out["managedZoneId"] = str(int(seed[:12], 16))
        out["nameServers"] = ["ns-gcp-private.googledomains.com."]
    elif type_token == "gcp:dns/recordSet:RecordSet":
        out["id"] = (
            f"projects/{project}/managedZones/{inputs.get('managedZone', 'zone')}/rrsets/{inputs.get('name', name)}/{inputs.get('type', 'A')}"
        )
    elif type_token == "gcp:projects/service:Service":
        out["id"] = f"{project}/{inputs.get('service', name)}"
    elif type_token in _IAM_MEMBER_TARGET:
        # The provider's id for a member grant: <what it is on>/<role>/<member>.
        target = inputs.get(_IAM_MEMBER_TARGET[type_token]) or project
        if type_token == "gcp:storage/bucketIAMMember:BucketIAMMember":
            target = f"b/{target}"
        out["id"] = f"{target}/{inputs.get('role', '')}/{inputs.get('member', '')}"
        out["etag"] = "BwY" + base64.b64encode(bytes.fromhex(seed[:16])).decode().rstrip("=")
    if "id" not in out:
        out["id"] = f"projects/{project}/{type_token.rsplit(':', 1)[-1].lower()}s/{physical}"
    return out


def invoke_result(
    token: str, args: dict[str, Any], project: str | None, region: str | None
) -> dict[str, Any] | None:
    """Answers for the GCP data sources InferStack calls; None for tokens that are not GCP's."""
    project = str(args.get("projectId") or args.get("project") or project or DEFAULT_PROJECT)
    region = str(args.get("region") or region or DEFAULT_REGION)
    if token == "gcp:organizations/getProject:getProject":
        return {
            "projectId": project,
            "number": FAKE_PROJECT_NUMBER,
            "name": project,
            "id": f"projects/{project}",
            "labels": {},
            "effectiveLabels": {},
        }
    if token == "gcp:organizations/getClientConfig:getClientConfig":
        return {"project": project, "region": region, "zone": f"{region}-a", "accessToken": "", "id": project}
    if token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
        email = service_agent(FAKE_PROJECT_NUMBER, "gs-project-accounts")
        return {"emailAddress": email, "member": f"serviceAccount:{email}", "project": project, "id": email}
    if token == "gcp:compute/getZones:getZones":
        return {
            "names": [f"{region}-{z}" for z in "abcf"],
            "project": project,
            "region": region,
            "id": region,
        }
    return None
