// IAM's decision for each request read from stdin, as a JSON list of
// {"policies": [<identity policy document>...], "principal", "action", "resource", "account"}:
// prints a JSON list of {"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "error", "detail"}.
// The evaluator is @cloud-copilot/iam-simulate (identity policies, conditions, wildcards as IAM does).
import { runSimulation } from "@cloud-copilot/iam-simulate";

let input = "";
for await (const chunk of process.stdin) input += chunk;

const answers = [];
for (const request of JSON.parse(input)) {
  const response = await runSimulation(
    {
      identityPolicies: request.policies.map((policy, index) => ({ name: `policy${index}`, policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      request: {
        principal: request.principal,
        action: request.action,
        resource: { resource: request.resource, accountId: request.account },
        contextVariables: request.context || {},
      },
    },
    {},
  );
  answers.push(
    response.resultType === "error"
      ? { result: "error", detail: JSON.stringify(response.errors) }
      : { result: response.overallResult, detail: "" },
  );
}
process.stdout.write(JSON.stringify(answers));
