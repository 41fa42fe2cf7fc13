// Kept minimal so `next build` stays quick on small hosts. `pg` stays a Node
// dependency (loaded at run time from node_modules), not bundled.
/** @type {import('next').NextConfig} */
module.exports = {
  serverExternalPackages: ['pg'],
  poweredByHeader: false,
};
