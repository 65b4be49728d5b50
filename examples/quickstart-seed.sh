#!/bin/sh
# Seeds the quickstart's small agent workspace in examples/quickstart/ (first run only), so that
# the first `persist apply -f examples/quickstart.yaml` has something to save:
#   repo/                 a git repository with one commit (saved as a bundle)
#   workspace/notes/      a folder of notes (adopted: moved into the bucket, then linked)
#   state/agent.db        a SQLite database made with the sqlite3 CLI (mirrored); a plain file
#                         (state/agent.json) where sqlite3 is not installed
# It does nothing once examples/quickstart/ exists: after the first apply the bucket holds the
# workspace, and a deleted workspace is brought back by `persist apply`, not by this script.
set -eu
root="$(cd "$(dirname "$0")" && pwd)/quickstart"
if [ -e "$root" ]; then
  echo "quickstart-seed: $root exists; nothing seeded"
  exit 0
fi
mkdir -p "$root/repo" "$root/workspace/notes" "$root/state"

# The agent's repository: one commit, by a fixed author (no git config needed).
cd "$root/repo"
git init -q -b main .
printf '# agent\n\nThe agent code lives here; persist saves it as one git bundle in the bucket.\n' > README.md
git add README.md
git -c user.name=quickstart -c user.email=quickstart@example.invalid commit -q -m "first commit"

# Notes the agent wrote before persist came along: apply adopts the folder into the bucket.
printf 'The workspace persists: every write in workspace/notes lands in the bucket at once.\n' > "$root/workspace/notes/welcome.md"

# State that is unsafe on a network file system: mirrored (restored at start, pushed back).
if command -v sqlite3 >/dev/null 2>&1; then
  sqlite3 "$root/state/agent.db" "CREATE TABLE memory(id INTEGER PRIMARY KEY, fact TEXT); INSERT INTO memory(fact) VALUES ('persist keeps this database');"
  state="state/agent.db (SQLite)"
else
  printf '{"memory": ["persist keeps this file"]}\n' > "$root/state/agent.json"
  state="state/agent.json (sqlite3 is not installed)"
fi
echo "quickstart-seed: seeded $root: repo/ (1 commit), workspace/notes/welcome.md, $state"
