// Verify tokens with node jose's createRemoteJWKSet, as a relying party would.
// stdin: {"cases": [{"name", "jwks_url", "token", "issuer", "alg"}]}; stdout: {name: "ok" | error}
import { createRemoteJWKSet, jwtVerify } from "jose";

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

const results = {};
for (const c of input.cases) {
  try {
    const jwks = createRemoteJWKSet(new URL(c.jwks_url), { timeoutDuration: 5000 });
    await jwtVerify(c.token, jwks, { issuer: c.issuer, algorithms: [c.alg] });
    results[c.name] = "ok";
  } catch (error) {
    results[c.name] = `${error.code || error.name}: ${error.message}`;
  }
}
console.log(JSON.stringify(results));
