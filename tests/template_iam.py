"""template.yaml as a deployment holds it, for tests of its IAM: SAM's transform (samtranslator, as
``sam deploy`` runs it), then the intrinsic functions the roles, policies and environments use,
resolved for given parameters and the physical names of the resources."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.iam.aws_managed_policies import aws_managed_policies_data
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from editgate_local.stack import TEMPLATE

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
_NO_VALUE = object()


def translate(parameters: Mapping[str, str]) -> dict[str, Any]:
    """The CloudFormation template SAM makes of template.yaml. Code locations are given as S3
    URIs, as ``sam package`` would (SAM refuses local paths)."""
    template = yaml_parse(TEMPLATE.read_text())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://sam-package/{properties[name]}"
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION  # SAM reads its region from boto's default session
    try:
        translated: dict[str, Any] = Translator(None, Parser()).translate(
            template, parameter_values=dict(parameters), get_managed_policy_map=dict
        )
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
    return translated


@dataclass
class Deployment:
    """``template`` (translated) deployed as stack ``stack_id`` with ``parameters`` (the template's
    defaults for the others); ``names``: what ``!Ref`` gives for a resource, ``arns``: its ``Arn``."""

    template: dict[str, Any]
    parameters: Mapping[str, str]
    stack_id: str
    names: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by what CloudFormation would put there
        (``AWS::NoValue`` items and keys left out)."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def policies(self, role: str) -> list[dict[str, Any]]:
        """Every policy document of a role SAM made (e.g. ``BatchFunctionRole``): its inline
        policies, and the AWS managed policies SAM attached (their documents as moto ships them)."""
        properties = self.template["Resources"][role]["Properties"]
        inline = [policy["PolicyDocument"] for policy in self.resolve(properties.get("Policies", []))]
        return inline + [_aws_managed_policy(arn) for arn in self.managed_policy_arns(role)]

    def managed_policy_arns(self, role: str) -> list[str]:
        arns: list[str] = self.resolve(
            self.template["Resources"][role]["Properties"].get("ManagedPolicyArns", [])
        )
        return arns

    def managed_policy(self, name: str) -> dict[str, Any]:
        """The document of an ``AWS::IAM::ManagedPolicy`` of the template."""
        document: dict[str, Any] = self.resolve(
            self.template["Resources"][name]["Properties"]["PolicyDocument"]
        )
        return document

    def environment(self, function: str) -> dict[str, str]:
        """A function's environment variables (the Globals' included)."""
        variables = self.template["Resources"][function]["Properties"]["Environment"]["Variables"]
        return {name: str(value) for name, value in self.resolve(variables).items()}

    def condition(self, name: str) -> bool:
        return bool(self._resolve(self.template["Conditions"][name]))

    @property
    def stack_name(self) -> str:
        return self.stack_id.split("/")[1]

    def _parameter(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
            "AWS::StackId": self.stack_id, "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }  # fmt: skip
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Parameters", {}):
            return str(self.template["Parameters"][name].get("Default", ""))
        return self.names[name]

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = (self._resolve(item) for item in value)
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            function = self._functions().get(name)
            if function is not None:
                return function(argument)
        entries = ((key, self._resolve(item)) for key, item in value.items())
        return {key: item for key, item in entries if item is not _NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": lambda name: _NO_VALUE if name == "AWS::NoValue" else self._parameter(name),
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": lambda argument: self._resolve(argument[0]).join(self._resolve(argument[1])),
            "Fn::Select": lambda argument: self._resolve(argument[1])[int(self._resolve(argument[0]))],
            "Fn::Split": lambda argument: self._resolve(argument[1]).split(self._resolve(argument[0])),
            "Fn::FindInMap": lambda argument: self.template["Mappings"][self._resolve(argument[0])][
                str(self._resolve(argument[1]))
            ][self._resolve(argument[2])],
            "Fn::If": lambda argument: self._resolve(
                argument[1] if self.condition(argument[0]) else argument[2]
            ),
            "Fn::Equals": lambda argument: self._resolve(argument[0]) == self._resolve(argument[1]),
            "Fn::Not": lambda argument: not self._resolve(argument[0]),
            "Condition": self.condition,
        }

    def _get_att(self, argument: Any) -> str:
        resource, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        if attribute != "Arn":
            raise KeyError(f"only Arn attributes are known: {resource}.{attribute}")
        return self.arns[resource]

    def _sub(self, argument: Any) -> str:
        text: str
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: str(self._resolve(value)) for name, value in variables.items()}
        out, rest = [], text
        while "${" in rest:
            before, _, rest = rest.partition("${")
            name, _, rest = rest.partition("}")
            out.append(before)
            if name in values:
                out.append(values[name])
            elif "." in name:
                out.append(self._get_att(name))
            else:
                out.append(self._parameter(name))
        return "".join(out) + rest


def _aws_managed_policy(arn: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(aws_managed_policies_data)[arn.rsplit("/", 1)[-1]]["Document"]
    return document
