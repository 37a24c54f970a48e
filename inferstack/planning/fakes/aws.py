"""Realistic, deterministic AWS outputs and data-source answers for the recording mock.

Every `aws:` resource gets what the provider would compute: an id in AWS's own format (vpc-..., subnet-...,
sg-...), an ARN in the resource's ARN format with the stack's region and the documentation account id,
and the handful of computed attributes callers read (an EKS cluster's endpoint, CA and OIDC issuer, a
bucket's name, a queue's URL, ...). Values derive from type and name only, so plans are byte-identical
between runs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

#: The account id AWS uses in its documentation.
FAKE_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"

#: Elastic Load Balancing's hosted zone ids for NLBs (alias targets), from AWS's endpoint tables.
NLB_HOSTED_ZONE_IDS = {
    "us-east-1": "Z26RNL4JYFTOTI",
    "us-east-2": "ZLMOA37VPKANP",
    "us-west-2": "Z18D5FSROUN65G",
    "eu-west-1": "Z2IFOLAFXWLO4F",
    "eu-central-1": "Z3F0SRJ5LGBH90",
}

#: The IAM roles the fake account already has, as (path, name): the service-linked roles AWS makes in every
#: account (AWS Support and Trusted Advisor), and no EC2 Spot role, so a plan shows what a first `pulumi up`
#: in a fresh account does. Tests put ("/aws-service-role/spot.amazonaws.com/", "AWSServiceRoleForEC2Spot")
#: here (monkeypatch) to plan an account that has launched spot before.
ACCOUNT_ROLES: tuple[tuple[str, str], ...] = (
    ("/aws-service-role/support.amazonaws.com/", "AWSServiceRoleForSupport"),
    ("/aws-service-role/trustedadvisor.amazonaws.com/", "AWSServiceRoleForTrustedAdvisor"),
)

# AWS id prefixes for the resources whose id is not their name.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "sgrule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/flowLog:FlowLog": "fl",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _physical_name(name: str, type_token: str) -> str:
    """The auto-name Pulumi gives a resource without an explicit name: logical name + 7 random chars."""
    return f"{name}-{_digest('name', type_token, name)[:7]}"


def resource_id(type_token: str, name: str) -> str | None:
    """The id AWS would assign, or None where the id is the resource's name (left to outputs)."""
    prefix = _ID_PREFIX.get(type_token)
    if prefix:
        return f"{prefix}-0{_digest('id', type_token, name)[:16]}"
    return None


def _fake_ca_pem_base64(seed: str) -> str:
    body = base64.b64encode(hashlib.sha512(seed.encode()).digest() * 6).decode()
    pem = "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


def _uuid(seed: str) -> str:
    h = _digest("uuid", seed)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def outputs_for(type_token: str, name: str, inputs: dict[str, Any], region: str | None) -> dict[str, Any]:
    """The inputs plus what AWS computes, for one `aws:` resource."""
    region = region or DEFAULT_REGION
    account = FAKE_ACCOUNT_ID
    out = copy.deepcopy(inputs)
    seed = _digest(type_token, name)
    kind = type_token.rsplit(":", 1)[-1]
    physical = inputs.get("name") or _physical_name(name, type_token)
    rid = resource_id(type_token, name)
    if rid:
        out["id"] = rid
    out.setdefault("tagsAll", inputs.get("tags") or {})

    if type_token == "aws:ec2/vpc:Vpc":
        out["arn"] = f"arn:aws:ec2:{region}:{account}:vpc/{rid}"
        out["defaultSecurityGroupId"] = f"sg-0{seed[:16]}"
        out["mainRouteTableId"] = f"rtb-0{seed[16:32]}"
    elif type_token == "aws:ec2/subnet:Subnet":
        out["arn"] = f"arn:aws:ec2:{region}:{account}:subnet/{rid}"
    elif type_token == "aws:ec2/securityGroup:SecurityGroup":
        out["arn"] = f"arn:aws:ec2:{region}:{account}:security-group/{rid}"
        out["name"] = physical
    elif type_token == "aws:ec2/vpcEndpoint:VpcEndpoint":
        out["arn"] = f"arn:aws:ec2:{region}:{account}:vpc-endpoint/{rid}"
        out["state"] = "available"
        if inputs.get("vpcEndpointType") == "Interface":
            # An interface endpoint's own DNS names (EC2 DescribeVpcEndpoints DnsEntries): the regional
            # name, then one per zone; for S3 they start with `*.` (bucket.vpce-....s3.<region>...).
            service = str(inputs.get("serviceName") or f"com.amazonaws.{region}.s3").rsplit(".", 1)[-1]
            host = f"{rid}-{seed[:8]}.{service}.{region}.vpce.amazonaws.com"
            out["dnsEntries"] = [{"dnsName": f"*.{host}"}]
            out["networkInterfaceIds"] = [
                f"eni-0{_digest(type_token, name, str(i))[:16]}"
                for i, _ in enumerate(inputs.get("subnetIds") or [])
            ]
    elif type_token == "aws:ec2/eip:Eip":
        out["allocationId"] = rid
        out["publicIp"] = f"198.51.100.{int(seed[:2], 16) % 250 + 1}"  # TEST-NET-2, RFC 5737
    elif type_token == "aws:ec2/launchTemplate:LaunchTemplate":
        out["arn"] = f"arn:aws:ec2:{region}:{account}:launch-template/{rid}"
        out["latestVersion"] = 1
        out["defaultVersion"] = 1
    elif type_token == "aws:eks/cluster:Cluster":
        cluster = physical
        out["name"] = cluster
        out["arn"] = f"arn:aws:eks:{region}:{account}:cluster/{cluster}"
        out["endpoint"] = f"https://{seed[:32].upper()}.gr7.{region}.eks.amazonaws.com"
        out["certificateAuthority"] = {"data": _fake_ca_pem_base64(seed)}
        out["identities"] = [
            {"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{seed[32:64].upper()}"}]}
        ]
        vpc = dict(out.get("vpcConfig") or {})
        vpc["clusterSecurityGroupId"] = f"sg-0{seed[40:56]}"
        vpc["vpcId"] = vpc.get("vpcId") or f"vpc-0{seed[:16]}"
        out["vpcConfig"] = vpc
        out["status"] = "ACTIVE"
        out["platformVersion"] = "eks.12"
        out["createdAt"] = "2026-01-01T00:00:00Z"
    elif type_token == "aws:eks/nodeGroup:NodeGroup":
        out["arn"] = (
            f"arn:aws:eks:{region}:{account}:nodegroup/{inputs.get('clusterName', 'cluster')}/{physical}/{_uuid(seed)}"
        )
        out["nodeGroupName"] = inputs.get("nodeGroupName") or physical
        out["status"] = "ACTIVE"
    elif type_token == "aws:eks/addon:Addon":
        out["arn"] = (
            f"arn:aws:eks:{region}:{account}:addon/{inputs.get('clusterName', 'cluster')}/{inputs.get('addonName', name)}/{_uuid(seed)}"
        )
    elif type_token == "aws:eks/accessEntry:AccessEntry":
        out["accessEntryArn"] = (
            f"arn:aws:eks:{region}:{account}:access-entry/{inputs.get('clusterName', 'cluster')}/{_uuid(seed)}"
        )
        out.setdefault("type", "STANDARD")
    elif type_token == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
        association_id = f"a-{seed[:17]}"
        out["associationId"] = association_id
        out["associationArn"] = (
            f"arn:aws:eks:{region}:{account}:podidentityassociation/{inputs.get('clusterName', 'cluster')}/{association_id}"
        )
    elif type_token == "aws:iam/role:Role":
        out["name"] = physical
        out["arn"] = f"arn:aws:iam::{account}:role/{physical}"
        out["uniqueId"] = "AROA" + seed[:17].upper()
        out["id"] = physical
    elif type_token == "aws:iam/policy:Policy":
        out["name"] = physical
        out["arn"] = f"arn:aws:iam::{account}:policy/{physical}"
        out["policyId"] = "ANPA" + seed[:17].upper()
    elif type_token == "aws:iam/instanceProfile:InstanceProfile":
        out["name"] = physical
        out["arn"] = f"arn:aws:iam::{account}:instance-profile/{physical}"
    elif type_token == "aws:kms/key:Key":
        key_id = _uuid(seed)
        out["keyId"] = key_id
        out["id"] = key_id
        out["arn"] = f"arn:aws:kms:{region}:{account}:key/{key_id}"
    elif type_token == "aws:kms/alias:Alias":
        out["arn"] = f"arn:aws:kms:{region}:{account}:{inputs.get('name', 'alias/' + name)}"
    elif type_token == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket") or _physical_name(name, type_token)
        out["bucket"] = bucket
        out["id"] = bucket
        out["arn"] = f"arn:aws:s3:::{bucket}"
        out["bucketRegionalDomainName"] = f"{bucket}.s3.{region}.amazonaws.com"
        out["region"] = region
    elif type_token == "aws:sqs/queue:Queue":
        queue = inputs.get("name") or physical
        out["name"] = queue
        out["arn"] = f"arn:aws:sqs:{region}:{account}:{queue}"
        out["url"] = f"https://sqs.{region}.amazonaws.com/{account}/{queue}"
        out["id"] = out["url"]
    elif type_token == "aws:cloudwatch/eventRule:EventRule":
        rule = inputs.get("name") or physical
        out["name"] = rule
        out["arn"] = f"arn:aws:events:{region}:{account}:rule/{rule}"
    elif type_token == "aws:cloudwatch/logGroup:LogGroup":
        out["arn"] = f"arn:aws:logs:{region}:{account}:log-group:{physical}"
    elif type_token == "aws:route53/record:Record":
        out["fqdn"] = inputs.get("name", "")
    elif kind and "arn" not in out:
        # Anything else: an ARN of the usual shape, so nothing downstream reads a None.
        service = type_token.split(":", 2)[1].split("/", 1)[0]
        out["arn"] = f"arn:aws:{service}:{region}:{account}:{kind.lower()}/{physical}"
    return out


def invoke_result(token: str, args: dict[str, Any], region: str | None) -> dict[str, Any] | None:
    """Answers for the AWS data sources InferStack calls; None for tokens that are not AWS's."""
    region = args.get("region") or region or DEFAULT_REGION
    if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
        letters = "abcdef"
        parts = region.split("-")
        short = parts[0] + parts[1][0] + parts[-1] if len(parts) == 3 else region  # us-east-1 -> use1
        return {
            "names": [f"{region}{x}" for x in letters],
            "zoneIds": [f"{short}-az{i + 1}" for i in range(len(letters))],
            "state": args.get("state", "available"),
            "groupNames": [region],
            "id": region,
        }
    if token == "aws:index/getCallerIdentity:getCallerIdentity":
        return {
            "accountId": FAKE_ACCOUNT_ID,
            "arn": f"arn:aws:iam::{FAKE_ACCOUNT_ID}:user/platform-deployer",
            "userId": "AIDAEXAMPLEDEPLOYER01",
            "id": FAKE_ACCOUNT_ID,
        }
    if token == "aws:index/getPartition:getPartition":
        return {
            "partition": "aws",
            "dnsSuffix": "amazonaws.com",
            "reverseDnsPrefix": "com.amazonaws",
            "id": "aws",
        }
    if token == "aws:index/getRegion:getRegion":
        return {"name": region, "region": region, "endpoint": f"ec2.{region}.amazonaws.com", "id": region}
    if token == "aws:ssm/getParameter:getParameter":
        parameter = str(args.get("name", ""))
        return {
            "name": parameter,
            "type": "String",
            "value": f"ami-0{_digest('ami', parameter)[:16]}",
            "version": 1,
            "arn": f"arn:aws:ssm:{region}::parameter{parameter}",
            "id": parameter,
        }
    if token == "aws:iam/getRoles:getRoles":
        return _roles(args, region)
    if token == "aws:lb/getHostedZoneId:getHostedZoneId":
        zone = NLB_HOSTED_ZONE_IDS.get(region, "Z" + _digest("zone", region)[:13].upper())
        return {"id": zone}
    return None


def _roles(args: dict[str, Any], region: str) -> dict[str, Any]:
    """aws.iam.get_roles as terraform-provider-aws answers it (internal/service/iam/roles_data_source.go):
    IAM ListRoles with the path prefix, then the name regex applied locally (Go's MatchString: a search, not
    a full match); none found is empty lists, not an error; the id is the region."""
    prefix = str(args.get("pathPrefix") or "/")
    pattern = args.get("nameRegex")
    found = [
        (path, name)
        for path, name in ACCOUNT_ROLES
        if path.startswith(prefix) and (not pattern or re.search(str(pattern), name))
    ]
    return {
        "names": [name for _, name in found],
        "arns": [f"arn:aws:iam::{FAKE_ACCOUNT_ID}:role{path}{name}" for path, name in found],
        "pathPrefix": args.get("pathPrefix"),
        "nameRegex": pattern,
        "id": region,
    }
