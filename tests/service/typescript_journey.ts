/// <reference types="node" />
// A journey through the generated TypeScript client, compiled with `tsc --strict` and run
// by Node against a live `kneo service serve`: check readiness, start a run that pauses for
// a person (operator key), find its task in the inbox and resume it (reviewer key), read the
// finished run, and see the service's error envelope on a 404 and a 401. Prints one JSON
// line of what it saw.
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
} from "./index.js";

const [baseUrl, operatorKey, reviewerKey, specPath] = process.argv.slice(2);
if (!baseUrl || !operatorKey || !reviewerKey || !specPath) {
  throw new globalThis.Error("usage: journey.js BASE_URL OPERATOR_KEY REVIEWER_KEY SPEC_PATH");
}

type Json = { [key: string]: unknown };

function record(value: unknown, what: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new globalThis.Error(`${what}: expected an object, got ${JSON.stringify(value)}`);
  }
  return value as Json;
}

function text(value: Json, key: string): string {
  const found = value[key];
  if (typeof found !== "string") {
    throw new globalThis.Error(`${key}: expected a string, got ${JSON.stringify(found)}`);
  }
  return found;
}

function items(value: Json, key: string): Json[] {
  const found = value[key];
  if (!Array.isArray(found)) {
    throw new globalThis.Error(`${key}: expected a list, got ${JSON.stringify(found)}`);
  }
  return found.map((item, index) => record(item, `${key}[${index}]`));
}

const client = createClient(createConfig({ baseUrl, auth: operatorKey }));
const reviewer = createClient(createConfig({ baseUrl, auth: reviewerKey }));
const anonymous = createClient(createConfig({ baseUrl }));

const ready = await healthReady({ client, throwOnError: true });

const body: CreateRunRequest = { spec_path: specPath, input: "draft the release note", target: "workflow" };
const created = record(
  (await runsCreate({ client, body, headers: { "Idempotency-Key": `ts-${Date.now()}` }, throwOnError: true })).data,
  "runs-create",
);
const runId = text(created, "run_id");

const inbox = (await humanTasksList({ client: reviewer, query: { run_id: runId }, throwOnError: true })).data;
const task = items(inbox, "tasks")[0];
if (task === undefined) throw new globalThis.Error(`no human task for ${runId}`);
const continuationId = text(task, "continuation_id");
const request = items(task, "requests")[0];
if (request === undefined) throw new globalThis.Error(`task ${continuationId} has no request`);

const resumed = record(
  (
    await humanTasksResume({
      client: reviewer,
      path: { continuation_id: continuationId },
      body: { request_id: text(request, "request_id"), decision: "approved", content: "Ship it." },
      throwOnError: true,
    })
  ).data,
  "human-tasks-resume",
);
const finished = (await runsGet({ client, path: { run_id: runId }, throwOnError: true })).data;
const listed = (await runsList({ client, query: { limit: 5 }, throwOnError: true })).data;

const missing = await runsGet({ client, path: { run_id: "run_does_not_exist" } });
const missingError: KneoError | undefined = missing.error;
const unauthenticated = await runsList({ client: anonymous });

console.log(
  JSON.stringify({
    ready: ready.response.status,
    created: { run_id: runId, status: text(created, "status") },
    task: { continuation_id: continuationId, tasks: items(inbox, "tasks").length },
    resumed: text(resumed, "status"),
    finished: text(finished, "status"),
    listed: items(listed, "runs").map((run) => text(run, "run_id")),
    not_found: { status: missing.response.status, error: missingError?.error },
    unauthenticated: { status: unauthenticated.response.status, error: unauthenticated.error?.error },
  }),
);
