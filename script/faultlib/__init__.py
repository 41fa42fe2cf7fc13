"""The pieces of script/faults: worlds (a throwaway project deployed by the real
`deploykit` binary on one kind of target), the crash campaign, the fault scenarios
and the bad-input scenarios. Each world knows how to deploy, kill, recover and
describe what is live, so the campaigns are written once."""
