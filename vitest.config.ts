import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end tests mount real FUSE file systems; keep files apart but not too many at once.
    maxWorkers: 2,
    // Tests that run the sync module in the process that also runs the S3 server behind an s3fs
    // mount: the module's parallel copies (4 through a mount) hold thread-pool threads in FUSE
    // calls whose answers need the server, which needs a thread for its own file I/O. With the
    // default 4 threads that deadlocks (test/resources/sync-fuse.test.ts hung); the workers get more.
    env: { UV_THREADPOOL_SIZE: '16' },
  },
});
