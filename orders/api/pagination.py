from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """Pages of 50 (``page_size`` up to 500; more is cut to 500). ``page`` and
    ``page_size`` must be whole numbers from 1, else a 400 naming the parameter (DRF
    would quietly use the default); a page past the end is a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        return self._positive(request, self.page_size_query_param, self.page_size, cutoff=self.max_page_size)

    def get_page_number(self, request, paginator):
        return self._positive(request, self.page_query_param, 1)

    @staticmethod
    def _positive(request, name: str, default: int, cutoff: int | None = None) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise ValidationError({name: ["A whole number from 1 is required."]})
        return min(int(raw), cutoff) if cutoff else int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = f"Results per page (default {self.page_size}, at most {self.max_page_size})."
        return parameters
