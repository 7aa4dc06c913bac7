/**
 * bench/common/paths.ts: where the repository is, so servers and scripts
 * start from its root whatever the bench's working directory.
 */

import { fileURLToPath } from "node:url";

/** The repository root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
