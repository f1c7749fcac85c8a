"""Pages for people (CONTRACT §9): server-rendered HTML on the same app as the API.

How a page is built (the status page, the clinic portal and the console follow it):

- A page module holds a plain Flask `Blueprint` with a `url_prefix` and is listed in
  `PAGE_BLUEPRINTS` (leads/web/pages/site.py); `register_pages` registers it, and every
  answer under its prefix, errors included, is then HTML (`rendering.is_page_request`),
  while the API keeps answering problem details.
- Each view declares its audience with `@allow(...)` from leads/web/guards.py:
  `Audience.CLINIC_PAGE`, `STAFF_PAGE`, `ADMIN_PAGE` (a session cookie from a sign-in page;
  `current_clinic()` / `current_staff()` give who it is), or `ANYONE` (sign-in, the patient's
  status page, which checks its token itself).
- A view answers `render_page("pages/....html", **context)`; templates extend
  `pages/base.html` (blocks `title`, `nav`, `content`) and use the macros of
  `pages/_macros.html` (`field`, `sign_out`). Text goes through `_()` (Flask-Babel; see
  `rendering` for the languages and leads/web/translations for the catalogues).
- Every form is a `FlaskForm` (leads/web/pages/forms.py) carrying `form.csrf_token`; a post
  without it answers 400 as a page. The API blueprints are exempt (bearer only).
- Domain operations are called as the API calls them; a `DomainError` a view lets through
  becomes an error page with its status and detail. Views flash a message and redirect
  (303) after a successful post.
"""
