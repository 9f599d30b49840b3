// The official MCP TypeScript SDK's client (@modelcontextprotocol/sdk, pinned in package-lock.json)
// against the assistant's MCP endpoint: connect (Streamable HTTP, a bearer token), list the tools, call
// each one in the plan, print one JSON document. tests/http/test_mcp_clients.py runs it.
//
//   MCP_TOKEN=... node clients/mcp_ts_client.mjs http://127.0.0.1:3000/mcp < plan.json
//   plan.json: [{"name": "check_availability", "arguments": {...}}, ...]
//
// Client.callTool validates a result's structuredContent against the tool's outputSchema, as every
// host built on this SDK (MCP Inspector among them) does: a call that throws is reported as "thrown".
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
const plan = JSON.parse(readFileSync(0, "utf8"));
const transport = new StreamableHTTPClientTransport(url, {
  requestInit: { headers: { Authorization: `Bearer ${process.env.MCP_TOKEN}` } },
});
const client = new Client({ name: "hibachi-ci-typescript-sdk", version: "1.0.0" });
await client.connect(transport);
const listed = await client.listTools();
const out = {
  server: client.getServerVersion(),
  tools: listed.tools.map((tool) => tool.name),
  calls: [],
};
for (const call of plan) {
  try {
    const result = await client.callTool({ name: call.name, arguments: call.arguments });
    out.calls.push({ name: call.name, result });
  } catch (error) {
    out.calls.push({ name: call.name, thrown: { code: error.code, message: String(error.message) } });
  }
}
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
