"""URLs of the Django test site: a typed parameter, a nested include and a failing view."""

from django.http import JsonResponse
from django.urls import include, path


def user(request, uid):
    return JsonResponse({"id": uid})


def boom(request):
    raise ValueError("boom")


api = [path("users/<int:uid>", user)]
urlpatterns = [path("users/<int:uid>", user), path("boom", boom), path("api/", include(api))]
