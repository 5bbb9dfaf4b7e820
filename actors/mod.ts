/** The domain: event schemas, facts, settings and the actor logics the engine runs. Pure code, no I/O. */
export * from "./events.ts";
export * from "./facts.ts";
export {
  DEFAULT_DOMAIN_SETTINGS,
  DOMAIN_SETTING_DOCS,
  DOMAIN_SETTING_NAMES,
  type DomainSettings,
  domainSettings,
  domainSettingsSchema,
  domainSettingsShape,
} from "./settings.ts";
export { createUserLogic, userLogic, type UserState } from "./user.ts";
export { createProductLogic, type PersistedProduct, productLogic, type ProductState } from "./product.ts";
export { createGlobalLogic, GLOBAL_KEY, globalLogic, type GlobalState, recentTotals } from "./global.ts";
export { type Alert, type AlertSummary } from "./alerts.ts";
export { type Recommendation } from "./recommendations.ts";
export { createDomainLogics, type DomainLogics } from "./domain.ts";
