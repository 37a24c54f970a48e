"""What every EC2 launch template for EKS nodes shares: instance metadata and volume rules.

System nodes (eks.py) and managed GPU nodes (gpu_node_pool.py) both use these, so the rules are written
once: IMDSv2 only with a hop limit of 1 (the node's own processes reach instance metadata, a pod behind
the node's network stack does not, so pods cannot read the node role's credentials), and encrypted gp3
volumes that go with the instance.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def imdsv2_only() -> aws.ec2.LaunchTemplateMetadataOptionsArgs:
    return aws.ec2.LaunchTemplateMetadataOptionsArgs(
        http_endpoint="enabled",
        http_tokens="required",
        http_put_response_hop_limit=1,
        http_protocol_ipv6="disabled",
    )


def encrypted_gp3(
    device: str, size_gib: int, kms_key_arn: pulumi.Input[str] | None
) -> aws.ec2.LaunchTemplateBlockDeviceMappingArgs:
    """An encrypted gp3 volume (with `kms_key_arn`, else the account's default EBS key), deleted with the node."""
    return aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
        device_name=device,
        ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
            volume_size=size_gib,
            volume_type="gp3",
            encrypted="true",
            kms_key_id=kms_key_arn,
            delete_on_termination="true",
        ),
    )
