// The spec `persist init` writes: valid as it stands, on the `local` backend so that it runs
// anywhere, with the FUSE backends and the other resources shown in comments.
export const STARTER_SPEC = `# persist spec: keeps this workspace durable in a bucket.
# Check it with \`persist validate\`, preview with \`persist plan\`, carry it out with \`persist apply\`.
# Editors: \`persist schema > persist.schema.json\` and add
#   # yaml-language-server: $schema=./persist.schema.json
# as the first line for completion and checks as you type.
# Strings may use \${environment}, \${env:NAME} and \${env:NAME:-fallback}.
version: 1

# Link names live in the workspace (default: this file's folder). Relative paths in this file
# resolve against this file's folder.
workspace: ./workspace

buckets:
  data:
    name: my-data
    # The local backend: a plain folder stands in for the bucket (no root, no credentials).
    # For Cloudflare R2 instead:
    #   name: my-data-\${environment}
    #   endpoint: https://\${env:CF_ACCOUNT_ID}.r2.cloudflarestorage.com
    #   region: auto
    #   credentials:
    #     accessKeyId: \${env:R2_ACCESS_KEY_ID}
    #     secretAccessKey: \${env:R2_SECRET_ACCESS_KEY}
    #   mount: { backend: s3fs, path: /data/my-data-\${environment} }   # or rclone, goofys
    mount:
      backend: local
      path: ./bucket

# <workspace>/<name> becomes a symlink to <mount>/<path>: every write lands in the bucket.
links:
  memory: workspace/memory
  notes: workspace/notes

# A git repository is kept on local disk and saved into the bucket as a bundle file:
# bundles:
#   project:
#     repo: ./project
#     file: bundles/project.bundle
#     keep: 2                       # earlier bundles kept as .1 and .2

# A directory unsafe on FUSE (SQLite, lock files) is mirrored: restored at start, pushed on apply:
# syncs:
#   state:
#     from: ./state
#     to: state
#     delete: true                  # mirror deletions (never from an empty source)
#     exclude: ["*.lock", "*.tmp"]

# A file restored from the bucket at start:
# files:
#   env:
#     from: secrets/app.env
#     to: ./app.env
#     mode: "0600"

# Environments, each deep-merged over the above (select with --env or $ENVIRONMENT):
# defaultEnvironment: development
# environments:
#   development: {}
#   production: {}
`;
