// The page shown instead of a dashboard page when the server wants a token: a read of the API
// answers 401, api() asks for the token and keeps it, and the page is loaded again with it.
import { api, errorText, showBanner } from "./api.js";

api("/experiments", { query: { limit: 1 } })
  .then(() => window.location.reload())
  .catch((err) => showBanner(errorText(err)));
