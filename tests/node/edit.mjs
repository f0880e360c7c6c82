// The official openai Node SDK against an editgate API: prints one JSON line per case.
// Env: EDITGATE_BASE_URL (…/v1), EDITGATE_API_KEY, EDITGATE_IMAGE (a PNG file).
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const client = new OpenAI({
  baseURL: process.env.EDITGATE_BASE_URL,
  apiKey: process.env.EDITGATE_API_KEY,
  maxRetries: 0,
});
const imagePath = process.env.EDITGATE_IMAGE;

async function run(name, call) {
  try {
    const answer = await call();
    const data = answer.data.map((d) => ({ url: Boolean(d.url), b64: d.b64_json ? d.b64_json.length : 0 }));
    console.log(JSON.stringify({ name, ok: true, size: answer.size, data, metadata: answer.metadata }));
  } catch (error) {
    console.log(JSON.stringify({ name, ok: false, status: error.status, param: error.param ?? null,
                                 code: error.code ?? null, type: error.constructor.name }));
  }
}

await run("read stream", () =>
  client.images.edit({ image: fs.createReadStream(imagePath), prompt: "node: a stream", model: "hidream-e1-1" }));
await run("toFile buffer (unknown_file)", async () =>
  client.images.edit({ image: await toFile(fs.readFileSync(imagePath)), prompt: "node: a buffer",
                       response_format: "b64_json" }));
await run("array of files (image[])", async () =>
  client.images.edit({ image: [await toFile(fs.readFileSync(imagePath), "a.png")], prompt: "node: an array",
                       n: 2 }));
// stream: true, as apps written for OpenAI's streamed edits iterate it; each image's PNG header
// gives its width and height.
try {
  const stream = await client.images.edit({ image: fs.createReadStream(imagePath), prompt: "node: streamed",
                                            n: 2, stream: true });
  const events = [];
  for await (const event of stream) {
    const png = Buffer.from(event.b64_json, "base64");
    events.push({ type: event.type, size: event.size, width: png.readUInt32BE(16), height: png.readUInt32BE(20),
                  ignored: event.metadata?.ignored_params ?? null });
  }
  console.log(JSON.stringify({ name: "stream n=2", ok: true, events }));
} catch (error) {
  console.log(JSON.stringify({ name: "stream n=2", ok: false, status: error.status, code: error.code ?? null,
                               type: error.constructor.name }));
}
await run("missing prompt", () => client.images.edit({ image: fs.createReadStream(imagePath) }));
await run("models", async () => {
  const page = await client.models.list();
  return { data: [], size: page.data.map((m) => m.id).join(","), metadata: null };
});
