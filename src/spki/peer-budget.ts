/** Moved to src/peer-budget.ts; kept until src/registry/service.ts imports it from there. */
export { PeerBudget } from '../peer-budget.ts'
