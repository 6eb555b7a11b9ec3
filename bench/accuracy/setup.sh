#!/usr/bin/env bash
# Finishes the accuracy fixture. caro-accuracy runs it once, inside the sandbox, in a copy of
# fixture/; every command it then scores starts from a fresh copy of the result. What cannot be
# committed as plain files is made here: dotfiles the repository itself would act on, build
# output, large files, a git history, archives, a symlink, and file times.
set -euo pipefail

mv dot-env .env
mv dot-gitignore .gitignore
chmod 600 .env
chmod 755 scripts/deploy.sh

mkdir -p build/obj build/empty empty_dir backups
printf 'object main\n' > build/obj/main.o
printf 'object utils\n' > build/obj/utils.o
printf 'cache\n' > build/cache.tmp
printf 'stale\n' > build/obj/old.tmp
printf 'draft\n' > draft.tmp
: > logs/empty.log
head -c 2000000 /dev/zero > data/dump.bin
head -c 300000 /dev/zero > logs/debug.log
ln -s data/config.json config.json
ln -s missing-target.txt broken-link

# A history with fixed identities and dates, so its hashes are the same on every run.
export GIT_AUTHOR_NAME="Dana Dev" GIT_AUTHOR_EMAIL="dana@example.com"
export GIT_COMMITTER_NAME="Dana Dev" GIT_COMMITTER_EMAIL="dana@example.com"
commit() {
  GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" git commit -q -m "$2"
}
git init -q -b main
git add -A
commit "2026-02-01T10:00:00Z" "Initial import"
printf '\n## 1.3.0\n- add search\n' >> CHANGELOG.md
git add CHANGELOG.md
commit "2026-02-10T15:30:00Z" "Add changelog entry for 1.3.0"
git tag v1.2.0 HEAD~1
git checkout -q -b feature/search
printf '\n\ndef search(items, word):\n    return [i for i in items if word in i]\n' >> src/utils.py
git add src/utils.py
commit "2026-02-15T09:00:00Z" "Add search helper"
git checkout -q main
git branch -q hotfix/login
# Left uncommitted: one modified tracked file, one untracked file.
printf '# local tweak\n' >> src/main.py
printf 'scratch notes\n' > scratch.txt

tar -czf backups/docs.tar.gz docs
zip -qr backups/photos.zip photos
printf 'line one\nline two\n' | gzip > backups/notes.txt.gz

# Times: everything old, a few files edited two days ago, the old logs older still.
find . -path ./.git -prune -o -exec touch -h -d '2026-01-15 12:00:00' {} +
touch -d '2025-06-01 08:00:00' logs/archive/*.log photos/2025/snow.jpg
touch -d '2 days ago' notes.txt src/main.py logs/app.log scratch.txt
