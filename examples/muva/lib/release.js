// What the running release is, read at request time from the release directory
// (PM2's cwd is <deploy_to>/current): its VERSION file, and whether the release was
// committed with an `.unhealthy` marker (how tests ship a release that fails health).
import fs from 'node:fs';
import path from 'node:path';

export function version() {
  try {
    return fs.readFileSync(path.join(process.cwd(), 'VERSION'), 'utf8').trim();
  } catch {
    return process.env.npm_package_version || 'unknown';
  }
}

export function unhealthy() {
  return fs.existsSync(path.join(process.cwd(), '.unhealthy'));
}
