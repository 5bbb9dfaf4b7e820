/** The domain: event schemas and the actor logics the engine runs. Pure code, no I/O. */
export * from "./events.ts";
export { userLogic, type UserState } from "./user.ts";
export { productLogic, type ProductState } from "./product.ts";
