/// <reference types="node" />
// A journey through the generated TypeScript client, compiled with `tsc --strict` and run
// by Node against a live `kneo service serve`: check readiness, start a run that pauses for
// a person (operator key), find its task in the inbox and resume it (reviewer key), read the
// finished run, and see the service's error envelope on a 404 and a 401. The answers are
// typed from docs/openapi.json (RunOutcome, HumanTaskList, RunView): no casts. Prints one
// JSON line of what it saw.
import {
  createClient,
  createConfig,
  healthReady,
  humanTasksList,
  humanTasksResume,
  runsCreate,
  runsGet,
  runsList,
  type CreateRunRequest,
  type Error as KneoError,
  type HumanTask,
  type RunOutcome,
  type RunView,
} from "./index.js";

const [baseUrl, operatorKey, reviewerKey, specPath] = process.argv.slice(2);
if (!baseUrl || !operatorKey || !reviewerKey || !specPath) {
  throw new globalThis.Error("usage: journey.js BASE_URL OPERATOR_KEY REVIEWER_KEY SPEC_PATH");
}

const client = createClient(createConfig({ baseUrl, auth: operatorKey }));
const reviewer = createClient(createConfig({ baseUrl, auth: reviewerKey }));
const anonymous = createClient(createConfig({ baseUrl }));

const ready = await healthReady({ client, throwOnError: true });

const body: CreateRunRequest = { spec_path: specPath, input: "draft the release note", target: "workflow" };
const idempotency = { "Idempotency-Key": `ts-${Date.now()}` };
const created: RunOutcome = (await runsCreate({ client, body, headers: idempotency, throwOnError: true })).data;

const inbox = (await humanTasksList({ client: reviewer, query: { run_id: created.run_id }, throwOnError: true })).data;
const task: HumanTask | undefined = inbox.tasks[0];
const request = task?.requests[0];
if (task === undefined || request === undefined) {
  throw new globalThis.Error(`no pending request for ${created.run_id}`);
}

const resumed: RunOutcome = (
  await humanTasksResume({
    client: reviewer,
    path: { continuation_id: task.continuation_id },
    body: { request_id: request.request_id, decision: "approved", content: "Ship it." },
    // the service continues the run on its worker: wait for its end (RFC 7240)
    headers: { Prefer: "wait=30" },
    throwOnError: true,
  })
).data;
const finished: RunView = (await runsGet({ client, path: { run_id: created.run_id }, throwOnError: true })).data;
const listed = (await runsList({ client, query: { limit: 5 }, throwOnError: true })).data;

const missing = await runsGet({ client, path: { run_id: "run_does_not_exist" } });
const missingError: KneoError | undefined = missing.error;
const unauthenticated = await runsList({ client: anonymous });

console.log(
  JSON.stringify({
    ready: ready.response.status,
    created: { run_id: created.run_id, status: created.status, request_id: created.request_id },
    task: { continuation_id: task.continuation_id, tasks: inbox.tasks.length, request_id: request.request_id },
    resumed: resumed.status,
    finished: { status: finished.status, visited_steps: finished.visited_steps },
    listed: listed.runs.map((run) => run.run_id),
    not_found: { status: missing.response.status, error: missingError?.error },
    unauthenticated: { status: unauthenticated.response.status, error: unauthenticated.error?.error },
  }),
);
